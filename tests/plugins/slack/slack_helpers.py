"""Helpers for the Slack plugin tests: routed items and a destination for a webhook URL."""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.slack import SlackDestination, SlackSettings

REAL_URL = "https://hooks.slack.com/services/T0001/B0001/abcdefabcdef"


def item(n: int = 1, rendered: dict[str, Any] | None = None, **extra: Any) -> OutboxItem:
    payload = {
        "type": "track",
        "messageId": f"msg-{n}",
        "timestamp": "2024-05-01T12:00:00+00:00",
        "userId": f"user-{n}",
        "anonymousId": None,
        "profileId": f"p-{n}",
        "event": "Order Completed",
        "name": None,
        "properties": {"total": 42.5},
        "traits": {},
        "identities": {},
        "context": {},
        "rendered": rendered if rendered is not None else {"text": f"Order #{n} completed"},
        **extra,
    }
    return OutboxItem(id=n, message_id=payload["messageId"], payload=payload)


def destination(url: str = REAL_URL) -> SlackDestination:
    any_host = not url.startswith("https://hooks.slack.com/")
    return SlackDestination(
        SlackSettings.model_validate({"webhook_url": url, "allow_any_host": any_host})
    )
