"""SFCC through the real engine to its contract fake, on one clock: one token for many
requests and workers, fetched again before Account Manager's 30 minutes run out, and again
once when the fake ends it early; faults as dead letters that name them."""

from __future__ import annotations

from sfcc_helpers import Harness, identify

from crossdock.plugins.sfcc.fake import TOKEN_LIFETIME, TOKEN_PATH


async def test_many_updates_share_one_token(harness: Harness) -> None:
    harness.delivery = {"concurrency": 4}
    harness.fake.token_rate_limit = 1  # a client asking twice a minute would be throttled
    report = await harness.deliver([identify(n, firstName=f"P{n}", lifetime_value=n,
                                             birthday="1990-07-04") for n in range(1, 10)])
    assert report.delivered == 9, report
    assert harness.fake.token_requests == 1
    assert harness.fake.customer("u7") == {
        "customer_no": "u7", "email": "ada7@example.com", "first_name": "P7",
        "c_lifetimeValue": 7, "birthday": "1990-07-04"}


async def test_the_token_is_fetched_again_before_its_thirty_minutes_end(
        harness: Harness) -> None:
    assert (await harness.deliver([identify(1)])).delivered == 1
    harness.clock.advance(TOKEN_LIFETIME - 90)  # 90 s left: still good
    assert (await harness.deliver([identify(2)])).delivered == 1
    assert harness.fake.token_requests == 1
    harness.clock.advance(45)  # in its last minute: a new one first
    assert (await harness.deliver([identify(3)])).delivered == 1
    assert harness.fake.token_requests == 2
    assert 401 not in [e["status"] for e in harness.fake.received]
    assert [e["token"] for e in harness.fake.received if e["path"] != TOKEN_PATH] == [1, 1, 2]


async def test_a_token_ended_early_is_replaced_once(harness: Harness) -> None:
    assert (await harness.deliver([identify(1)])).delivered == 1
    harness.fake.expire_tokens()
    report = await harness.deliver([identify(2)])
    assert report.delivered == 1, report
    assert [e["status"] for e in harness.fake.received] == [200, 200, 401, 200, 200]


async def test_an_unknown_customer_and_a_bad_custom_value_are_dead_letters(
        harness: Harness) -> None:
    report = await harness.deliver([
        routed_unknown(), identify(2, tier=7), identify(3, gender="other")])
    assert (report.delivered, report.dead) == (1, 2), report
    reasons = sorted(letter.reason for letter in harness.outbox.dead_letters())
    assert reasons[0].startswith("HTTP 400: InvalidCustomPropertyException: Can't write "
                                 "custom property 'c_loyaltyTier'")
    assert reasons[1] == ("HTTP 404: CustomerNotFoundException: No customer with number "
                          "'stranger' found in customer list 'RefArch'.")
    # The gender Commerce Cloud cannot take was left out; the rest of u3 went through.
    assert harness.fake.customer("u3") == {"customer_no": "u3",
                                           "email": "ada3@example.com"}


async def test_a_wrong_password_is_a_dead_letter_without_it(harness: Harness) -> None:
    report = await harness.deliver([identify(1)], client_secret="wrong-password-1")
    assert report.dead == 1
    (letter,) = harness.outbox.dead_letters()
    assert letter.reason.endswith("/…: HTTP 401: invalid_client: Client authentication "
                                  "failed")
    assert "wrong-password-1" not in letter.reason


async def test_throttling_is_retried(harness: Harness) -> None:
    harness.fake.fail_next(429, '{"fault": {"type": "QuotaExceededException"}}',
                           {"Retry-After": "1"})
    report = await harness.deliver([identify(1)])
    assert report.retried == 1, report
    harness.clock.advance(5)
    assert (await harness.deliver([])).delivered == 1


def routed_unknown() -> dict[str, object]:
    payload = identify(9)
    payload["userId"] = "stranger"
    return payload
