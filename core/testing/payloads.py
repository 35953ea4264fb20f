"""Routed payloads and outbox items for plugin unit tests: what `build_requests` reads.

    item = outbox_item(routed_payload(1, event="Order Completed", traits={"email": "a@b.c"}))

`routed_payload` has every key of the route step's format (core/route/__init__.py), in its
order, with the values of person `n`; keyword arguments replace or add keys.
"""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem

TIMESTAMP = "2024-05-01T12:00:00+00:00"


def routed_payload(n: int = 1, **fields: Any) -> dict[str, Any]:
    """A routed `track` payload of person `n` (messageId msg-n, userId user-n, profileId p-n),
    with nothing dropped, truncated or rendered; `fields` replace or add keys."""
    payload: dict[str, Any] = {
        "type": "track",
        "messageId": f"msg-{n}",
        "timestamp": TIMESTAMP,
        "userId": f"user-{n}",
        "anonymousId": None,
        "sessionId": None,
        "profileId": f"p-{n}",
        "event": None,
        "name": None,
        "properties": {},
        "traits": {},
        "identities": {},
        "context": {},
        "rendered": {},
        "dropped": {"event_attributes": 0, "user_attributes": 0},
        "truncated": 0,
    }
    payload.update(fields)
    return payload


def outbox_item(payload: dict[str, Any], item_id: int | None = None, *, attempts: int = 1,
                created_at: float = 0.0, attempted_at: float = 0.0) -> OutboxItem:
    """An outbox row carrying `payload`; its id is the number in messageId "msg-<n>" unless
    given. `attempted_at` is the time the engine would stamp on this attempt."""
    message_id = str(payload["messageId"])
    if item_id is None:
        item_id = int(message_id.rpartition("-")[2])
    return OutboxItem(id=item_id, message_id=message_id, payload=payload, attempts=attempts,
                      created_at=created_at, attempted_at=attempted_at)
