"""Helpers for the webhook plugin tests: routed items and a destination for a URL."""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.webhook import WebhookDestination, WebhookSettings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def routed(n: int = 1, **extra: Any) -> dict[str, Any]:
    """A routed payload in the route step's format."""
    return {
        "type": "track",
        "messageId": f"msg-{n}",
        "timestamp": "2024-05-01T12:00:00+00:00",
        "userId": f"user-{n}",
        "anonymousId": None,
        "sessionId": None,
        "profileId": f"p-{n}",
        "event": "Order Completed",
        "name": None,
        "properties": {"total": 42.5, "currency": "EUR"},
        "traits": {"plan": "pro"},
        "identities": {},
        "context": {},
        "rendered": {},
        "dropped": {"event_attributes": 0, "user_attributes": 0},
        **extra,
    }


def item(n: int = 1, **extra: Any) -> OutboxItem:
    payload = routed(n, **extra)
    return OutboxItem(id=n, message_id=payload["messageId"], payload=payload,
                      created_at=1_714_564_800.0)


def destination(url: str, **settings: Any) -> WebhookDestination:
    if url.startswith("http://127.0.0.1"):
        settings.setdefault("allow_private_network", True)
    return WebhookDestination(WebhookSettings.model_validate({"url": url, **settings}))

