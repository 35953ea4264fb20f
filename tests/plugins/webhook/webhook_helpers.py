"""Helpers for the webhook plugin tests: routed items and a destination for a URL."""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.webhook import WebhookDestination, WebhookSettings
from crossdock.testing.payloads import outbox_item, routed_payload

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: the message time of every routed payload here (testing.payloads.TIMESTAMP)
MESSAGE_TIME = 1_714_564_800
#: when the engine attempts the delivery in these tests: a day after the message
ATTEMPT_TIME = MESSAGE_TIME + 86_400


def routed(n: int = 1, **extra: Any) -> dict[str, Any]:
    """A routed payload in the route step's format."""
    return routed_payload(n, **{"event": "Order Completed", "traits": {"plan": "pro"},
                                "properties": {"total": 42.5, "currency": "EUR"}, **extra})


def item(n: int = 1, attempted_at: float = ATTEMPT_TIME, **extra: Any) -> OutboxItem:
    return outbox_item(routed(n, **extra), n, created_at=MESSAGE_TIME,
                       attempted_at=attempted_at)


def destination(url: str, **settings: Any) -> WebhookDestination:
    return WebhookDestination(WebhookSettings.model_validate({"url": url, **settings}))

