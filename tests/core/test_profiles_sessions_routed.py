"""Session end reaches a destination that subscribes to it, 45 simulated minutes after the
last message: the sweep ends the session and routes its session_end event to the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossdock.loader import parse_config
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline
from crossdock.profiles import ProfileStore, sweep_and_route


def test_session_end_is_enqueued_for_a_subscribed_destination(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    hook = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
            "delivery": {"allow_private_network": True}}
    loaded = parse_config({
        "outbox": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
        "destinations": {
            "sessions": {**hook, "filter": {"events": {"allow": ["session_end"]}}},
            "orders": {**hook, "filter": {"events": {"allow": ["Order Completed"]}}},
        },
    }, base_dir=tmp_path, env={})
    outbox = SQLiteOutbox(tmp_path / "c.db")
    store = ProfileStore(loaded.config.profiles, db=outbox.db, clock=lambda: now[0])
    pipeline = Pipeline(loaded, outbox, store)
    result = pipeline.accept([
        {"type": "track", "userId": "u1", "sessionId": "s1", "event": "Order Completed"},
    ])
    assert result.accepted and not result.errors
    now[0] += 10 * 60
    pipeline.accept([{"type": "page", "userId": "u1", "sessionId": "s1", "name": "Thanks"}])
    assert outbox.counts()["orders"].queued == 1
    assert "sessions" not in outbox.counts()  # session_start is not subscribed
    now[0] += 45 * 60 - 1
    assert sweep_and_route(pipeline, store) == 0
    assert "sessions" not in outbox.counts()
    now[0] += 1  # 45 minutes after the last message
    assert sweep_and_route(pipeline, store) == 1
    assert sweep_and_route(pipeline, store) == 0
    counts = outbox.counts()
    assert counts["sessions"].queued == 1 and counts["orders"].queued == 1
    row = outbox.db.execute(
        "SELECT message_id FROM outbox WHERE destination = 'sessions'").fetchone()
    stored = outbox.row("sessions", row[0])
    assert stored is not None
    payload = stored["payload"]
    assert payload["event"] == "session_end" and payload["userId"] == "u1"
    assert float(payload["properties"]["durationSeconds"]) == 55 * 60
    outbox.close()


def test_the_routed_payload_carries_when_the_session_started(tmp_path: Path) -> None:
    """sessionStart is the profile store's start of the message's session (Amplitude names a
    session by it): the same for every message of the session, a new one after it ended, and
    absent for a message without a sessionId."""
    now = [1_700_000_000.25]
    loaded = parse_config({
        "outbox": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
        "destinations": {"hook": {"plugin": "webhook",
                                  "settings": {"url": "http://127.0.0.1:9/hook"},
                                  "delivery": {"allow_private_network": True}}},
    }, base_dir=tmp_path, env={})
    outbox = SQLiteOutbox(tmp_path / "c.db")
    store = ProfileStore(loaded.config.profiles, db=outbox.db, clock=lambda: now[0])
    pipeline = Pipeline(loaded, outbox, store)

    def session_start(message_id: str) -> Any:
        stored = outbox.row("hook", message_id)
        assert stored is not None
        return stored["payload"].get("sessionStart")

    pipeline.accept([{"type": "track", "userId": "u1", "sessionId": "s1", "event": "A",
                      "messageId": "m1"}])
    now[0] += 60
    pipeline.accept([{"type": "track", "userId": "u1", "sessionId": "s1", "event": "B",
                      "messageId": "m2"},
                     {"type": "track", "userId": "u1", "event": "C", "messageId": "m3"}])
    now[0] += 46 * 60  # idle past the timeout: the same sessionId opens a new session
    pipeline.accept([{"type": "track", "userId": "u1", "sessionId": "s1", "event": "D",
                      "messageId": "m4"}])
    assert session_start("m1") == session_start("m2") == "2023-11-14T22:13:20.250000Z"
    assert session_start("m3") is None
    assert session_start("m4") == "2023-11-14T23:00:20.250000Z"
    outbox.close()
