"""Cassette tests: Mailchimp requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/mailchimp/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from mailchimp_helpers import audience, destination, item

from crossdock.destination import DELIVERED, Failed, OutboxItem, Outcome, Rejected
from crossdock.plugins.mailchimp.fake import MailchimpFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


def send(url: str, items: list[OutboxItem]) -> list[Outcome | Rejected]:
    return outcomes(destination(f"{url}/3.0"), items)


def test_cassette_member_tags_event(server: RunningServer, fake: MailchimpFake) -> None:
    with VCR.use_cassette("member_tags_event.yaml") as cassette:
        outcomes = send(server.url, [
            item(1, traits={"email": "ann@example.com", "firstName": "Ann"}),
            audience(1, email="ann@example.com"),
            item(1, "track", "Order Completed", traits={"email": "ann@example.com"},
                 properties={"total": 42})])
    assert outcomes == [DELIVERED] * 3
    assert cassette.play_count == (0 if recording() else 3)
    assert len(fake.received) == (3 if recording() else 0)


def test_cassette_batch_subscribe(server: RunningServer) -> None:
    with VCR.use_cassette("batch_subscribe.yaml"):
        outcomes = send(server.url, [
            item(n, traits={"email": email, "emailOptIn": True})
            for n, email in enumerate(["a@example.com", "b@example.com", "bad@@x"])])
    assert outcomes[:2] == [DELIVERED, DELIVERED]
    assert isinstance(outcomes[2], Failed) and "looks fake or invalid" in outcomes[2].reason


def test_cassette_missing_member(server: RunningServer) -> None:
    with VCR.use_cassette("missing_member.yaml"):
        outcomes = send(server.url, [audience(7)])
    assert outcomes == [Failed("mailchimp 404 Resource Not Found: The requested resource "
                               "could not be found.")]
