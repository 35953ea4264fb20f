"""MailUp through the real engine to its contract fake, on one clock: one token for many
requests (password grant), fetched again before its hour runs out, the refresh token grant
with MailUp's renewal of the refresh token, a token ended early replaced once; the list's
opt-in behaviour and the email consent (a withdrawn consent unsubscribes)."""

from __future__ import annotations

from mailup_helpers import Harness, payload

from crossdock.plugins.mailup.fake import (
    DEFAULT_REFRESH,
    PENDING,
    SUBSCRIBED,
    TOKEN_LIFETIME,
    TOKEN_PATH,
    UNSUBSCRIBED,
)


async def test_recipients_share_one_token_and_carry_their_fields(harness: Harness) -> None:
    harness.delivery = {"concurrency": 4}
    report = await harness.deliver([payload(n, traits={
        "email": f"ada{n}@example.com", "firstName": f"P{n}", "plan": "pro",
        "phone": f"+39 347 000 {n:04d}"}) for n in range(1, 21)])
    assert report.delivered == 20, report
    assert harness.fake.token_requests == 1
    held = harness.fake.recipient("ada7@example.com")
    assert held is not None and held["Lists"] == {1: SUBSCRIBED}
    assert {f["Id"]: f["Value"] for f in held["Fields"]} == {1: "P7", 12: "u7", 13: "pro"}
    assert (held["MobilePrefix"], held["MobileNumber"]) == ("+39", "3470000007")


async def test_the_token_is_fetched_again_before_its_hour_ends(harness: Harness) -> None:
    assert (await harness.deliver([payload(1)])).delivered == 1
    harness.clock.advance(TOKEN_LIFETIME - 90)  # 90 s left: still good
    assert (await harness.deliver([payload(2)])).delivered == 1
    assert harness.fake.token_requests == 1
    harness.clock.advance(45)  # in its last minute: a new one first
    assert (await harness.deliver([payload(3)])).delivered == 1
    grants = [e["body"]["grant_type"] for e in harness.fake.received
              if e["path"] == TOKEN_PATH]
    assert grants == ["password", "password"]
    assert 401 not in [e["status"] for e in harness.fake.received]
    assert [e["token"] for e in harness.fake.received if e["path"] != TOKEN_PATH] == [1, 1, 2]


async def test_the_refresh_token_grant_uses_mailups_renewed_refresh_token(
        harness: Harness) -> None:
    assert (await harness.deliver([payload(1)], refresh_token=DEFAULT_REFRESH)).delivered == 1
    harness.clock.advance(TOKEN_LIFETIME)
    # The configured refresh token works once (MailUp renews it): the second fetch succeeds
    # only with the renewed one the first answer carried.
    report = await harness.deliver([payload(2)], refresh_token=DEFAULT_REFRESH)
    assert report.delivered == 1, report
    tokens = [e for e in harness.fake.received if e["path"] == TOKEN_PATH]
    assert [(e["body"]["grant_type"], e["status"]) for e in tokens] == [
        ("refresh_token", 200), ("refresh_token", 200)]


async def test_a_token_ended_early_is_replaced_once(harness: Harness) -> None:
    assert (await harness.deliver([payload(1)])).delivered == 1
    harness.fake.expire_tokens()
    report = await harness.deliver([payload(2)])
    assert report.delivered == 1, report
    assert [e["status"] for e in harness.fake.received] == [200, 200, 401, 200, 200]


async def test_a_withdrawn_consent_unsubscribes_and_no_consent_adds_no_one(
        harness: Harness) -> None:
    assert (await harness.deliver([payload(1), payload(2)])).delivered == 2
    report = await harness.deliver([payload(1, False), payload(3, False)])
    assert report.delivered == 2, report
    gone = harness.fake.recipient("ada1@example.com")
    assert gone is not None and gone["Lists"] == {1: UNSUBSCRIBED}
    kept = harness.fake.recipient("ada2@example.com")
    assert kept is not None and kept["Lists"] == {1: SUBSCRIBED}
    assert harness.fake.recipient("ada3@example.com") is None  # never added
    # Granted again later: MailUp keeps the opt-out (it is not forced back).
    assert (await harness.deliver([payload(1)])).delivered == 1
    again = harness.fake.recipient("ada1@example.com")
    assert again is not None and again["Lists"] == {1: UNSUBSCRIBED}


async def test_double_opt_in_leaves_new_recipients_pending(harness: Harness) -> None:
    report = await harness.deliver([payload(1), payload(2)], confirm_email=True)
    assert report.delivered == 2, report
    held = harness.fake.recipient("ada1@example.com")
    assert held is not None and held["Lists"] == {1: PENDING}
    assert sorted(harness.fake.confirmations) == [(1, "ada1@example.com"),
                                                  (1, "ada2@example.com")]


async def test_a_refused_recipient_and_a_wrong_password_are_dead_letters(
        harness: Harness) -> None:
    harness.fake.fields.pop(13)  # the account has no field 13: the plan cannot be written
    report = await harness.deliver([payload(1, traits={"email": "ada1@example.com",
                                                       "plan": "pro"}), payload(2, traits={})])
    assert report.dead == 2, report
    reasons = sorted(letter.reason for letter in harness.outbox.dead_letters())
    assert reasons == [
        "HTTP 400: BadRequest: Field 13 does not exist in the account",
        "rejected: Email: MailUp keys the list's recipients by email; none of traits.email, "
        "identities.email holds one (options.email)"]
    report = await harness.deliver([payload(3)], password="wrong-password-1")
    assert report.dead == 1, report
    letter = next(d for d in harness.outbox.dead_letters() if "token" in d.reason)
    assert letter.reason.endswith("HTTP 400: invalid_grant: wrong username or password")
    assert "wrong-password-1" not in letter.reason
