"""Cassette tests: facebook_audience requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/facebook_audience/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from facebook_helpers import SECRET, destination, item

from crossdock.destination import DELIVERED, Failed, OutboxItem, Outcome, Rejected, Retry
from crossdock.plugins.facebook_audience.fake import FacebookAudienceFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


def send(url: str, items: list[OutboxItem], **settings: object) -> list[Outcome | Rejected]:
    return outcomes(destination(url, app_secret=SECRET, **settings), items)


def test_cassette_add_and_remove(server: RunningServer, fake: FacebookAudienceFake) -> None:
    with VCR.use_cassette("add_and_remove.yaml") as cassette:
        outcomes = send(server.url, [item(1), item(2), item(3, "audience_exited")])
    assert outcomes == [DELIVERED, DELIVERED]
    assert cassette.play_count == (0 if recording() else 2)
    assert len(fake.received) == (2 if recording() else 0)


def test_cassette_errors(server: RunningServer, fake: FacebookAudienceFake) -> None:
    fake.fail_with_code(80003, "There have been too many calls to this ad-account",
                        subcode=2446079)
    with VCR.use_cassette("errors.yaml"):
        throttled = send(server.url, [item(1)])
        bad_token = send(server.url, [item(1)], access_token="expired")
    assert throttled == [Retry("facebook throttled (80003/2446079): There have been too many "
                               "calls to this ad-account, fbtrace_id AFakeTraceId", None)]
    assert bad_token == [Failed("access token invalid (190): Invalid OAuth access token - "
                                "Cannot parse access token, fbtrace_id AFakeTraceId")]
