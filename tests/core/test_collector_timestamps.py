"""Segment's clock fields: the collector stamps receivedAt, keeps sentAt and corrects the
timestamp for the device's clock skew, keeping the device's value as originalTimestamp; the
fields reach the payload a destination leases. `crossdock send` and the Python API leave a
message without them as it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_helpers import START, Running, basic, loaded_config, serve

from crossdock.collector.timestamps import Stamper
from crossdock.pipeline import build_pipeline

RECEIVED = datetime.fromtimestamp(START, UTC)  # 2023-11-14T22:13:20Z
RECEIVED_ISO = "2023-11-14T22:13:20Z"


@pytest.mark.parametrize(("raw", "batch_sent_at", "expected"), [
    # No sentAt: nothing to correct; the timestamp stays as sent.
    ({"timestamp": "2023-11-14T20:00:00Z"}, None,
     {"timestamp": "2023-11-14T20:00:00Z", "receivedAt": RECEIVED_ISO}),
    # No time at all: the message happened when it arrived.
    ({}, None, {"timestamp": RECEIVED_ISO, "receivedAt": RECEIVED_ISO}),
    ({}, "2023-11-14T22:13:19Z",
     {"timestamp": RECEIVED_ISO, "receivedAt": RECEIVED_ISO, "sentAt": "2023-11-14T22:13:19Z"}),
    # The device's clock is an hour fast: sent "23:13:20", the event 10 s before that.
    ({"timestamp": "2023-11-14T23:13:10Z", "sentAt": "2023-11-14T23:13:20Z"}, None,
     {"timestamp": "2023-11-14T22:13:10Z", "receivedAt": RECEIVED_ISO,
      "sentAt": "2023-11-14T23:13:20Z", "originalTimestamp": "2023-11-14T23:13:10Z"}),
    # The batch's sentAt (the server SDKs put it there) serves every message without one...
    ({"timestamp": "2023-11-14T23:13:10Z"}, "2023-11-14T23:13:20Z",
     {"timestamp": "2023-11-14T22:13:10Z", "receivedAt": RECEIVED_ISO,
      "sentAt": "2023-11-14T23:13:20Z", "originalTimestamp": "2023-11-14T23:13:10Z"}),
    # ... and a message's own wins. Offsets and Unix milliseconds are times too.
    ({"timestamp": "2023-11-15T00:13:10+01:00", "sentAt": 1_700_003_600_000}, "1999-01-01",
     {"timestamp": "2023-11-14T22:13:10Z", "receivedAt": RECEIVED_ISO,
      "sentAt": 1_700_003_600_000, "originalTimestamp": "2023-11-15T00:13:10+01:00"}),
    # RudderStack's SDKs send the device's time as originalTimestamp.
    ({"originalTimestamp": "2023-11-14T22:13:00Z", "sentAt": "2023-11-14T22:13:15Z"}, None,
     {"timestamp": "2023-11-14T22:13:05Z", "receivedAt": RECEIVED_ISO,
      "sentAt": "2023-11-14T22:13:15Z", "originalTimestamp": "2023-11-14T22:13:00Z"}),
    ({"originalTimestamp": "2023-11-14T22:13:00Z"}, None,
     {"timestamp": "2023-11-14T22:13:00Z", "receivedAt": RECEIVED_ISO,
      "originalTimestamp": "2023-11-14T22:13:00Z"}),
    # A client's receivedAt is not ours.
    ({"timestamp": "2023-11-14T20:00:00Z", "receivedAt": "2030-01-01T00:00:00Z"}, None,
     {"timestamp": "2023-11-14T20:00:00Z", "receivedAt": RECEIVED_ISO}),
    # What is not a time is left for the model to refuse by name.
    ({"timestamp": "2023-11-14T20:00:00Z", "sentAt": "yesterday"}, None,
     {"timestamp": "2023-11-14T20:00:00Z", "receivedAt": RECEIVED_ISO, "sentAt": "yesterday"}),
])
def test_stamp(raw: dict[str, Any], batch_sent_at: Any, expected: dict[str, Any]) -> None:
    assert Stamper(RECEIVED, batch_sent_at)({"type": "track", **raw}) == {"type": "track",
                                                                          **expected}


def test_stamp_leaves_what_is_no_message_alone() -> None:
    assert Stamper(RECEIVED, "2023-11-14T22:13:20Z")([1]) == [1]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    # One webhook destination, never delivered to: its leased payloads are what it would get.
    hook = {"warehouse": {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/h"},
                          "delivery": {"allow_private_network": True}}}
    with serve(loaded_config(tmp_path, hook)) as r:
        yield r


def leased(running: Running) -> dict[str, dict[str, Any]]:
    # Unordered: one person's messages are wanted at once, not one lease at a time.
    items = running.outbox.lease("warehouse", 100, 60.0, "test", ordered=False)
    return {item.message_id: item.payload for item in items}


def test_a_beacon_with_sent_at_is_corrected(running: Running) -> None:
    # analytics.js: one message per request, sentAt in the message, text/plain.
    beacon = {"anonymousId": "a", "event": "Clicked", "messageId": "m-1",
              "timestamp": "2023-11-14T23:13:10.250Z", "sentAt": "2023-11-14T23:13:20Z"}
    r = httpx.post(f"{running.url}/v1/track", headers={**basic(), "Content-Type": "text/plain"},
                   content=httpx.Request("POST", "/", json=beacon).content, timeout=10)
    assert r.status_code == 200, r.text
    payload = leased(running)["m-1"]
    assert {k: payload[k] for k in ("timestamp", "sentAt", "receivedAt", "originalTimestamp")} \
        == {"timestamp": "2023-11-14T22:13:10.250000Z", "sentAt": "2023-11-14T23:13:20Z",
            "receivedAt": RECEIVED_ISO, "originalTimestamp": "2023-11-14T23:13:10.250000Z"}


def test_a_batch_without_sent_at_keeps_its_timestamps(running: Running) -> None:
    batch = [{"type": "track", "userId": "u", "event": "E", "messageId": "m-1",
              "timestamp": "2020-01-01T00:00:00Z"},
             {"type": "page", "userId": "u", "messageId": "m-2"}]
    r = httpx.post(f"{running.url}/v1/batch", headers=basic(), json={"batch": batch},
                   timeout=10)
    assert r.status_code == 200, r.text
    got = leased(running)
    assert got["m-1"]["timestamp"] == "2020-01-01T00:00:00Z"
    assert got["m-2"]["timestamp"] == RECEIVED_ISO
    for payload in got.values():
        assert payload["receivedAt"] == RECEIVED_ISO
        assert "sentAt" not in payload and "originalTimestamp" not in payload


def test_a_bad_sent_at_is_refused_by_name_and_costs_no_other_message(
        running: Running) -> None:
    batch = [{"type": "track", "userId": "u", "event": "E", "sentAt": "yesterday"},
             {"type": "track", "userId": "u", "event": "E", "messageId": "m-2"}]
    r = httpx.post(f"{running.url}/v1/batch", headers=basic(), json={"batch": batch},
                   timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["response"]["errors"] == [{"index": 0, "problems": [
        "sentAt: Input should be a valid datetime or date, input is too short"]}]
    assert list(leased(running)) == ["m-2"]


def test_messages_sent_without_the_collector_are_unchanged(tmp_path: Path) -> None:
    # `crossdock send` and the Python API: no receivedAt is stamped, nothing corrected.
    loaded = loaded_config(tmp_path, {"warehouse": {"plugin": "webhook", "settings": {
        "url": "http://127.0.0.1:9/h"}, "delivery": {"allow_private_network": True}}})
    pipeline = build_pipeline(loaded)
    try:
        result = pipeline.accept([
            {"type": "track", "userId": "u", "event": "E", "messageId": "m-1",
             "timestamp": "2020-01-01T00:00:00Z"},
            {"type": "track", "userId": "u", "event": "E", "messageId": "m-2",
             "timestamp": "2020-01-01T00:00:00Z", "sentAt": "2020-01-01T01:00:00Z"},
        ])
        assert result.accepted == ["m-1", "m-2"]
        items = pipeline.outbox.lease("warehouse", 10, 60.0, "test", ordered=False)
    finally:
        pipeline.close()
    first, second = (item.payload for item in items)
    assert first["timestamp"] == second["timestamp"] == "2020-01-01T00:00:00Z"
    assert not {"sentAt", "receivedAt", "originalTimestamp"} & set(first)
    assert second["sentAt"] == "2020-01-01T01:00:00Z" and "receivedAt" not in second
