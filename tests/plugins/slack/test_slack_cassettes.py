"""Cassette tests: the Slack plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/slack/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from slack_helpers import destination, item

from crossdock.destination import DELIVERED, Failed, Outcome, PlannedRequest, Retry
from crossdock.plugins.slack.fake import DEFAULT_WEBHOOK, SlackFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


class FrozenClock:
    def __call__(self) -> float:
        return 0.0


@pytest.fixture
def fake() -> SlackFake:
    # A frozen clock: the burst of 2 is all a recording gets, whatever the machine's speed.
    return SlackFake(webhooks={DEFAULT_WEBHOOK}, burst=2, clock=FrozenClock())


def send_all(url: str, rendered: list[dict[str, object]]) -> list[Outcome]:
    dest = destination(url)
    outcomes: list[Outcome] = []
    with httpx.Client() as client:
        for n, r in enumerate(rendered):
            (planned,) = dest.build_requests([item(n, r)])
            assert isinstance(planned, PlannedRequest)
            outcomes.append(dest.classify(planned, client.send(planned.request)))
    return outcomes


def test_cassette_text_and_blocks(server: RunningServer, fake: SlackFake) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Order* " + "x" * 3100}}]
    with VCR.use_cassette("text_and_blocks.yaml") as cassette:
        outcomes = send_all(fake.url(server.url), [{"text": "plain"},
                                                    {"text": "rich", "blocks": blocks}])
    assert outcomes == [DELIVERED, DELIVERED]
    assert len(fake.received) == (2 if recording() else 0)
    assert cassette.play_count == (0 if recording() else 2)


def test_cassette_rate_limited(server: RunningServer, fake: SlackFake) -> None:
    with VCR.use_cassette("rate_limited.yaml"):
        outcomes = send_all(fake.url(server.url), [{"text": f"m{n}"} for n in range(3)])
    assert outcomes == [DELIVERED, DELIVERED, Retry("slack rate_limited (HTTP 429)", 1.0)]


def test_cassette_errors(server: RunningServer, fake: SlackFake) -> None:
    fake.script([{"status": 500, "body": "rollup_error"}])
    with VCR.use_cassette("errors.yaml"):
        outcomes = send_all(fake.url(server.url), [{"text": "a"}])
        unknown = send_all(fake.url(server.url, "T0/B0/gone"), [{"text": "b"}])
    assert outcomes == [Retry("slack rollup_error (HTTP 500)", None)]
    assert unknown == [Failed("slack channel_not_found (HTTP 404)")]


def test_cassette_fake_refuses_what_slack_refuses(server: RunningServer) -> None:
    url = f"{server.url}/services/{DEFAULT_WEBHOOK}"
    with VCR.use_cassette("refusals.yaml"), httpx.Client() as client:
        no_text = client.post(url, json={"username": "bot"})
        too_many = client.post(url, json={"text": "t", "blocks": [{"type": "divider"}] * 51})
    assert (no_text.status_code, no_text.text) == (400, "no_text")
    assert (too_many.status_code, too_many.text) == (400, "invalid_blocks")
    assert isinstance(destination(url).classify(PlannedRequest(no_text.request, []), no_text),
                      Failed)
