"""The Slack contract fake over real loopback HTTP enforces what Slack documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_helpers import destination, item

from crossdock.destination import DELIVERED, Failed, PlannedRequest, Retry
from crossdock.plugins.slack.fake import DEFAULT_WEBHOOK, SlackFake, make_app
from crossdock.testing.fakeserver import RunningServer, fake_process, serve
from crossdock.testing.pipeline import run_pipeline


class Clock:
    """A clock the test steps by hand, so the rate limit is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> SlackFake:
    return SlackFake(webhooks={DEFAULT_WEBHOOK}, archived={"T1/B1/old"}, rate_limit=1.0,
                     burst=2, clock=clock)


def post(server: RunningServer, json: Any = None, webhook: str = DEFAULT_WEBHOOK,
         content: bytes | None = None) -> httpx.Response:
    url = f"{server.url}/services/{webhook}"
    return httpx.post(url, content=content) if content is not None else httpx.post(url, json=json)


def test_the_plugins_request_is_posted(server: RunningServer, fake: SlackFake) -> None:
    dest = destination(fake.url(server.url))
    (planned,) = dest.build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    response = httpx.Client().send(planned.request)
    assert (response.status_code, response.text) == (200, "ok")
    assert dest.classify(planned, response) == DELIVERED
    assert fake.received == [{"webhook": DEFAULT_WEBHOOK, "body": {"text": "Order #1 completed"}}]


def test_overrides_are_posted_and_an_unknown_channel_is_not_found() -> None:
    fake = SlackFake(channels={"#sales"}, rate_limit=None)
    with serve(make_app(fake)) as server:
        dest = destination(fake.url(server.url), username="Crossdock", icon_emoji=":package:")
        ok = dest.build_requests([item(1, rendered={"text": "t", "channel": "#sales"})])
        lost = dest.build_requests([item(2, rendered={"text": "t", "channel": "#nowhere"})])
        with httpx.Client() as client:
            responses = [client.send(p.request) for p in [*ok, *lost]
                         if isinstance(p, PlannedRequest)]
    assert [(r.status_code, r.text) for r in responses] == [(200, "ok"),
                                                            (404, "channel_not_found")]
    assert fake.received[0]["body"] == {"text": "t", "username": "Crossdock",
                                        "icon_emoji": ":package:", "channel": "#sales"}


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"text": "hi"}, "webhook": "T9/B9/unknown"}, 404, "channel_not_found"),
        ({"json": {"text": "hi"}, "webhook": "T1/B1/old"}, 410, "channel_is_archived"),
        ({"content": b"text=hi"}, 400, "invalid_payload"),
        ({"json": ["text"]}, 400, "invalid_payload"),
        ({"json": {"username": "bot"}}, 400, "no_text"),
        ({"json": {"text": "t", "channel": ["#a"]}}, 400, "invalid_payload"),
        ({"json": {"text": "t", "icon_emoji": 1}}, 400, "invalid_payload"),
        ({"json": {"text": "   "}}, 400, "no_text"),
        ({"json": {"text": "t", "blocks": [{"type": "divider"}] * 51}}, 400, "invalid_blocks"),
        ({"json": {"text": "t", "blocks": {"type": "divider"}}}, 400, "invalid_blocks"),
        ({"json": {"text": "t", "blocks": [{"text": "typeless"}]}}, 400, "invalid_blocks"),
        ({"json": {"blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                           "text": "x" * 3001}}]}},
         400, "invalid_blocks"),
    ],
)
def test_refusals(server: RunningServer, fake: SlackFake, kwargs: dict[str, Any], status: int,
                  code: str) -> None:
    response = post(server, **kwargs)
    assert (response.status_code, response.text) == (status, code)
    assert fake.received == [] and fake.errors == {code: 1}


def test_fifty_blocks_without_text_are_fine(server: RunningServer) -> None:
    response = post(server, json={"blocks": [{"type": "divider"}] * 50})
    assert (response.status_code, response.text) == (200, "ok")


def test_rate_limit_with_burst_and_retry_after(server: RunningServer, fake: SlackFake,
                                               clock: Clock) -> None:
    statuses = [post(server, json={"text": str(i)}).status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    limited = post(server, json={"text": "again"})
    assert limited.headers["retry-after"] == "1" and limited.text == "rate_limited"
    # Another webhook has its own allowance.
    fake.webhooks.add("T2/B2/other")
    assert post(server, json={"text": "x"}, webhook="T2/B2/other").status_code == 200
    clock.now += 1.0
    assert post(server, json={"text": "after a second"}).status_code == 200
    assert post(server, json={"text": "too soon"}).status_code == 429
    assert fake.errors == {"rate_limited": 3}
    assert [m["body"]["text"] for m in fake.received] == ["0", "1", "x", "after a second"]


def test_the_plugin_retries_a_429_after_retry_after(server: RunningServer, fake: SlackFake) -> None:
    dest = destination(fake.url(server.url))
    outcomes = []
    with httpx.Client() as client:
        for n in range(3):
            (planned,) = dest.build_requests([item(n)])
            assert isinstance(planned, PlannedRequest)
            outcomes.append(dest.classify(planned, client.send(planned.request)))
    assert outcomes == [DELIVERED, DELIVERED, Retry("slack rate_limited (HTTP 429)", 1.0)]


def test_the_limit_can_be_turned_off() -> None:
    fake = SlackFake(rate_limit=None)
    with serve(make_app(fake)) as server:
        statuses = {post(server, json={"text": str(i)}).status_code for i in range(20)}
    assert statuses == {200} and len(fake.received) == 20


def test_scripted_failures_and_control_routes(server: RunningServer, fake: SlackFake) -> None:
    dest = destination(fake.url(server.url))
    with httpx.Client(base_url=server.url) as control:
        control.post("/_fake/script", json={"replies": [
            {"status": 500, "body": "rollup_error"}, {"status": 403, "body": "action_prohibited"},
        ]})
        outcomes = []
        for n in range(2):
            (planned,) = dest.build_requests([item(n)])
            assert isinstance(planned, PlannedRequest)
            outcomes.append(dest.classify(planned, control.send(planned.request)))
        seen = control.get("/_fake/received").json()
    assert outcomes == [Retry("slack rollup_error (HTTP 500)", None),
                        Failed("slack action_prohibited (HTTP 403)")]
    assert seen == {"received": [], "errors": {"rollup_error": 1, "action_prohibited": 1}}


def test_the_fake_runs_standalone() -> None:
    with fake_process("crossdock.plugins.slack.fake", "--webhook", "T9/B9/tok",
                      "--rate-limit", "0") as running:
        assert running.banner.strip() == f"{running.url}/services/T9/B9/tok"
        dest = destination(running.banner.strip())
        (planned,) = dest.build_requests([item(1)])
        assert isinstance(planned, PlannedRequest)
        assert dest.classify(planned, httpx.Client().send(planned.request)) == DELIVERED
        assert httpx.post(f"{running.url}/services/T1/B1/unknown", json={"text": "x"}
                          ).status_code != 200


async def test_the_mapping_picks_the_channel_per_message_through_the_pipeline(
        tmp_path: Path) -> None:
    # crossdock.yaml -> accept -> route (the channel template) -> outbox -> deliver -> fake
    fake = SlackFake(channels={"#sales", "#vip-sales"}, rate_limit=None)
    with serve(make_app(fake)) as server:
        config = {
            "outbox": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
            "collector": {"enabled": False},
            "destinations": {"alerts": {
                "plugin": "slack",
                "settings": {"webhook_url": fake.url(server.url), "allow_any_host": True,
                             "channel": "#sales", "username": "Crossdock"},
                "delivery": {"rate_limit": 100, "allow_private_network": True},  # a loopback fake
                "mapping": {"templates": {
                    "channel": "{{ '#vip-sales' if properties.total > 100 else '' }}"}}}},
        }
        messages = [{"type": "track", "userId": f"u{n}", "messageId": f"m{n}",
                     "event": "Order Completed", "properties": {"total": total}}
                    for n, total in ((1, 50), (2, 500))]
        run = await run_pipeline(config, messages, base_dir=tmp_path)
    assert run.report.delivered == 2, run.rows
    assert [(r["body"]["channel"], r["body"]["username"]) for r in fake.received] == [
        ("#sales", "Crossdock"), ("#vip-sales", "Crossdock")]
