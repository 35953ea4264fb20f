"""Google Ads through the real engine to its contract fake, on one clock: a Customer Match job
per batch (create, add, run) on one token, the token refreshed before its hour ends and once
after Google ends it early, click conversions with per-row partial failures."""

from __future__ import annotations

import hashlib

from google_ads_helpers import Harness, conversion, membership

from crossdock.plugins.google_ads.fake import TOKEN_LIFETIME, TOKEN_PATH


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_audience_changes_keep_the_user_list_in_sync(harness: Harness) -> None:
    report = await harness.deliver([membership(n) for n in range(1, 6)])
    assert report.delivered == 5, report
    assert [e["path"].rsplit(":", 1)[-1] for e in harness.fake.received] == [
        TOKEN_PATH, "create", "addOperations", "run"]
    assert {"hashedEmail": h("ada3@gmail.com")} in harness.fake.members()
    report = await harness.deliver([membership(3, event="audience_exited")])
    assert report.delivered == 1
    assert {"hashedEmail": h("ada3@gmail.com")} not in harness.fake.members()
    assert len(harness.fake.members()) == 4
    assert harness.fake.token_requests == 1


async def test_the_token_is_refreshed_before_its_hour_ends_and_after_an_early_end(
        harness: Harness) -> None:
    assert (await harness.deliver([conversion(1)])).delivered == 1
    harness.clock.advance(TOKEN_LIFETIME - 30)  # in its last minute: a new one first
    assert (await harness.deliver([conversion(2)])).delivered == 1
    assert harness.fake.token_requests == 2
    harness.fake.expire_tokens()
    assert (await harness.deliver([conversion(3)])).delivered == 1
    assert [e["status"] for e in harness.fake.received][-3:] == [401, 200, 200]
    assert harness.fake.token_requests == 3


async def test_a_partial_failure_dead_letters_only_its_rows(harness: Harness) -> None:
    report = await harness.deliver([conversion(1), conversion(2, gclid="unknown-2"),
                                    conversion(3)])
    assert (report.delivered, report.dead) == (2, 1), report
    (letter,) = harness.outbox.dead_letters()
    assert letter.reason == ("conversionUploadError.UNPARSEABLE_GCLID: The click ID could not "
                             "be decoded.")
    assert [c["gclid"] for c in harness.fake.conversions] == ["Cj0gclid1", "Cj0gclid3"]


async def test_a_missing_manager_is_a_dead_letter_naming_it(harness: Harness) -> None:
    report = await harness.deliver([membership(1)], login_customer_id=None)
    assert report.dead == 1
    (letter,) = harness.outbox.dead_letters()
    assert letter.reason.startswith("HTTP 403 PERMISSION_DENIED: authorizationError."
                                    "USER_PERMISSION_DENIED: User doesn't have permission")


async def test_a_revoked_refresh_token_is_a_dead_letter_without_it(harness: Harness) -> None:
    report = await harness.deliver([conversion(1)], refresh_token="1//revoked-token-9")
    assert report.dead == 1
    (letter,) = harness.outbox.dead_letters()
    assert letter.reason.endswith("HTTP 400: invalid_grant: Token has been expired or "
                                  "revoked.")
    assert "revoked-token-9" not in letter.reason


async def test_throttling_is_retried(harness: Harness) -> None:
    harness.fake.fail_next(429, '{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}',
                           {"Retry-After": "1"})
    report = await harness.deliver([conversion(1)])
    assert report.retried == 1, report
    harness.clock.advance(5)
    assert (await harness.deliver([])).delivered == 1
