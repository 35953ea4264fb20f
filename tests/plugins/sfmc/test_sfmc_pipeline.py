"""SFMC through the real engine to its contract fake, on one clock: one token for many
requests and workers, fetched again before Marketing Cloud's 20 minutes run out, and again
once when the fake ends it early; batches, a passing lock, journeys."""

from __future__ import annotations

from sfmc_helpers import Harness, identify, track

from crossdock.plugins.sfmc.fake import TOKEN_LIFETIME


async def test_many_rows_and_events_share_one_token(harness: Harness) -> None:
    harness.delivery = {"concurrency": 4}
    harness.fake.token_rate_limit = 1  # a client asking twice a minute would be throttled
    report = await harness.deliver([identify(n, firstName=f"P{n}", lifetime_value=n)
                                    for n in range(1, 121)]
                                   + [track(n, price=n) for n in range(1, 6)])
    assert report.delivered == 125, report
    assert harness.fake.token_requests == 1
    rows = harness.fake.rows("Crossdock_Contacts")
    assert len(rows) == 120
    assert {"ContactKey": "u7", "EmailAddress": "ada7@example.com", "FirstName": "P7",
            "LifetimeValue": 7} in rows
    assert len(harness.fake.events) == 5
    assert report.requests == 3 + 5  # 50 + 50 + 20 rows, five events


async def test_the_token_is_fetched_again_before_its_twenty_minutes_end(
        harness: Harness) -> None:
    assert (await harness.deliver([identify(1)])).delivered == 1
    harness.clock.advance(TOKEN_LIFETIME - 90)  # 90 s left: still good
    assert (await harness.deliver([identify(2)])).delivered == 1
    assert harness.fake.token_requests == 1
    harness.clock.advance(45)  # 45 s left: in its last minute, a new one first
    assert (await harness.deliver([identify(3)])).delivered == 1
    assert harness.fake.token_requests == 2
    statuses = [e["status"] for e in harness.fake.received]
    assert 401 not in statuses
    rest = [e["token"] for e in harness.fake.received if e["path"] != "/v2/token"]
    assert rest == [1, 1, 2]


async def test_a_token_the_tenant_ended_early_is_replaced_once(harness: Harness) -> None:
    assert (await harness.deliver([identify(1)])).delivered == 1
    harness.fake.expire_tokens()
    report = await harness.deliver([track(1)])
    assert report.delivered == 1, report
    assert [e["status"] for e in harness.fake.received] == [200, 200, 401, 200, 201]


async def test_a_passing_lock_is_retried_and_a_bad_row_is_a_dead_letter(
        harness: Harness) -> None:
    harness.fake.lock_next()
    report = await harness.deliver([identify(1)])
    assert report.retried == 1
    harness.clock.advance(5)
    report = await harness.deliver([identify(2, lifetime_value="lots")])
    assert report.delivered == 1 and report.dead == 1, report
    (letter,) = harness.outbox.dead_letters()
    assert letter.reason == ("HTTP 400: Unable to save rows for data extension ID "
                             f"{letter.reason.split('ID ')[1].split(' ')[0]} (errorcode 10006)"
                             ": row 0: the value for column [LifetimeValue] is not a valid "
                             "Number")


async def test_a_wrong_client_secret_is_a_dead_letter_without_the_secret(
        harness: Harness) -> None:
    report = await harness.deliver([identify(1)], client_secret="wrong-secret-1")
    assert report.dead == 1
    (letter,) = harness.outbox.dead_letters()
    assert letter.reason.endswith("/…: HTTP 401: invalid_client: Client authentication "
                                  "failed.")
    assert "wrong-secret-1" not in letter.reason


async def test_a_refused_rowset_is_tried_row_by_row_so_only_the_bad_row_dies(
        harness: Harness) -> None:
    report = await harness.deliver([identify(1), identify(2, lifetime_value="lots"),
                                    identify(3)])
    assert report.retried == 3, report  # Marketing Cloud saved u1, and does not say which
    harness.clock.advance(5)
    report = await harness.deliver([])
    assert (report.delivered, report.dead, report.requests) == (2, 1, 3), report
    assert sorted(r["ContactKey"] for r in harness.fake.rows("Crossdock_Contacts")) == [
        "u1", "u3"]
