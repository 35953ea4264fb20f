"""The real Segment and RudderStack Python SDKs, pointed at the collector unchanged.

The collector runs on 127.0.0.1 (uvicorn in a thread, a SQLite outbox, the profile store and
the real route step) with one webhook destination, the webhook contract fake. Each SDK sends
track, identify, page, screen, alias and group through its own consumer thread (batched
POST /v1/batch with the write key as Basic auth, gzip where the SDK does it); then one
delivery pass shows what the webhook received, clock fields included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_helpers import START, WRITE_KEY, Running, loaded_config, serve
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from crossdock.collector import body as collector_body
from crossdock.collector.timestamps import parse_time
from crossdock.delivery import deliver_once
from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.plugins.webhook.fake import make_app as webhook_app
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.fakeserver import serve as serve_fake

RECEIVED_AT = datetime.fromtimestamp(START, UTC)
#: the device's clock in these tests is today's, years after the collector's START: a skew
#: the correction has to undo
SKEW_SLACK = timedelta(seconds=30)


@dataclass
class Sdk:
    name: str
    make: Callable[..., Any]
    gzip: bool


SDKS = [
    Sdk("segment", SegmentClient, gzip=False),
    Sdk("segment", SegmentClient, gzip=True),
    Sdk("rudderstack", RudderClient, gzip=True),  # RudderStack's SDK gzips by default
]


@dataclass
class Stack:
    running: Running
    hook: WebhookFake
    server: RunningServer

    def deliver(self) -> dict[str, dict[str, Any]]:
        """One delivery pass; the webhook bodies received, by messageId."""
        report = asyncio.run(deliver_once(self.running.app.state.collector.loaded,
                                          self.running.outbox))
        assert report.delivered, report
        bodies = self.server.call(lambda: [entry["body"] for entry in self.hook.received])
        return {body["messageId"]: body for body in bodies}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    hook = WebhookFake()
    with serve_fake(webhook_app(hook)) as server:
        destinations = {"warehouse": {"plugin": "webhook", "settings": {
            "url": f"{server.url}/hook"}, "delivery": {"allow_private_network": True}}}
        with serve(loaded_config(tmp_path, destinations)) as running:
            yield Stack(running, hook, server)


@pytest.fixture
def inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of what the collector inflated from gzip bodies (one entry per piece)."""
    sizes: list[int] = []
    feed = collector_body.Gunzip.feed

    def counted(self: collector_body.Gunzip, data: bytes) -> bytes:
        out = feed(self, data)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(collector_body.Gunzip, "feed", counted)
    return sizes


def send_everything(client: Any, happened: datetime) -> None:
    """Every call the SDKs have, each with a known messageId."""
    client.page(None, None, "Landing", anonymous_id="anon-0", message_id="m-landing")
    client.identify("u-1", {"plan": "pro", "email": "ada@example.com"},
                    anonymous_id="anon-1", message_id="m-identify")
    client.track("u-1", "Order Completed", {"total": 42.5, "currency": "EUR"},
                 timestamp=happened, message_id="m-track")
    client.page("u-1", "Docs", "Pricing", {"path": "/pricing"}, message_id="m-page")
    client.screen("u-1", None, "Home", {"tab": 2}, message_id="m-screen")
    client.alias("anon-0", "u-1", message_id="m-alias")
    client.group("u-1", "acme", {"name": "ACME", "employees": 42}, message_id="m-group")


@pytest.mark.parametrize("sdk", SDKS, ids=lambda s: f"{s.name}-{'gzip' if s.gzip else 'plain'}")
def test_sdk_calls_reach_the_outbox_profiles_and_the_webhook(
    sdk: Sdk, stack: Stack, inflated: list[int]
) -> None:
    errors: list[Exception] = []
    client = sdk.make(WRITE_KEY, host=stack.running.url, gzip=sdk.gzip, max_retries=0,
                      upload_interval=0.05, on_error=lambda exc, batch: errors.append(exc))
    happened = datetime.now(UTC) - timedelta(minutes=5)
    try:
        send_everything(client, happened)
        client.flush()
    finally:
        client.join()
    assert errors == []
    assert (sum(inflated) > 0) == sdk.gzip  # gzip bodies went through the inflater

    got = stack.deliver()
    assert sorted(got) == ["m-alias", "m-group", "m-identify", "m-landing", "m-page", "m-screen",
                           "m-track"]
    track = got["m-track"]
    assert (track["type"], track["event"], track["userId"]) == ("track", "Order Completed", "u-1")
    assert track["properties"] == {"total": 42.5, "currency": "EUR"}
    assert track["context"]["library"]["name"] == "analytics-python"
    page, screen = got["m-page"], got["m-screen"]
    assert (page["name"], page["category"], page["properties"]) == (
        "Pricing", "Docs", {"path": "/pricing"})
    assert (screen["name"], screen["properties"]) == ("Home", {"tab": 2})
    assert got["m-alias"]["previousId"] == "anon-0"
    group = got["m-group"]
    assert (group["type"], group["groupId"]) == ("group", "acme")
    assert group["groupTraits"] == {"name": "ACME", "employees": 42}
    assert got["m-identify"]["traits"]["plan"] == "pro"

    # The clock fields: receivedAt is the collector's, sentAt the SDK's; the timestamp is
    # moved by the device's skew (years here) and the device's own value kept.
    for body in got.values():
        assert parse_time(body["receivedAt"]) == RECEIVED_AT
        assert parse_time(body["sentAt"]) is not None
        sent, original = parse_time(body["sentAt"]), parse_time(body["originalTimestamp"])
        assert sent is not None and original is not None
        assert parse_time(body["timestamp"]) == RECEIVED_AT - (sent - original)
    original = parse_time(track["originalTimestamp"])
    assert original is not None and abs(original - happened) < timedelta(milliseconds=1)
    corrected = parse_time(track["timestamp"])
    assert corrected is not None
    assert RECEIVED_AT - timedelta(minutes=5) - SKEW_SLACK < corrected
    assert corrected <= RECEIVED_AT - timedelta(minutes=5)

    # The profile store: one person (the alias joined the anonymous visit), the identify's
    # traits, and nothing of the group's traits.
    profile = stack.running.show("u-1")
    assert profile is not None and profile["messages"] == 7
    custom = profile["attributes"]["custom"]
    assert custom["plan"]["value"] == "pro"
    assert "employees" not in custom and "name" not in custom
    assert stack.running.show("anon-0") == profile
    assert stack.running.show("anon-1") == profile


@pytest.mark.parametrize("sdk", [SDKS[0], SDKS[2]], ids=lambda s: s.name)
def test_sdk_reads_a_refusal_and_does_not_retry_it(sdk: Sdk, stack: Stack) -> None:
    errors: list[Any] = []
    client = sdk.make("not-the-key", host=stack.running.url, gzip=sdk.gzip, max_retries=3,
                      upload_interval=0.05, on_error=lambda exc, batch: errors.append(exc))
    try:
        client.track("u-1", "Order Completed", message_id="m-1")
        client.flush()
    finally:
        client.join()
    assert [(e.status, e.code, e.message) for e in errors] == [
        (401, "unauthorized", "authorization: unknown write key")]
    metrics = httpx.get(f"{stack.running.url}/metrics", timeout=10).text
    assert 'crossdock_collector_requests_total{endpoint="/v1/batch",status="401"} 1' in metrics
    assert stack.running.processed() == 0
