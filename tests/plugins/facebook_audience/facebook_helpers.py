"""Helpers for the facebook_audience plugin tests: membership items and destinations."""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.facebook_audience import (
    FacebookAudienceDestination,
    FacebookAudienceSettings,
)
from crossdock.plugins.facebook_audience.fake import DEFAULT_AUDIENCE, DEFAULT_TOKEN


def item(n: int, event: str = "audience_entered", traits: dict[str, Any] | None = None,
         **extra: Any) -> OutboxItem:
    """A membership change of person `n` as the audience engine emits it."""
    payload = {
        "type": "track",
        "messageId": f"msg-{n}",
        "timestamp": "2024-05-01T12:00:00+00:00",
        "userId": f"user-{n}",
        "anonymousId": None,
        "profileId": f"p-{n}",
        "event": event,
        "name": None,
        "properties": {"audience": "high_value"},
        "traits": traits if traits is not None else {
            "email": f"Person{n}@Example.com ", "firstName": f"Ann-{n}", "lastName": "O'Neil",
            "phone": f"+1 (650) 555-{n % 10000:04d}"},
        "identities": {},
        "context": {},
        "rendered": {},
        **extra,
    }
    return OutboxItem(id=n, message_id=payload["messageId"], payload=payload)


def destination(graph_url: str = "https://graph.facebook.com", **settings: Any
                ) -> FacebookAudienceDestination:
    raw = {"audience_id": DEFAULT_AUDIENCE, "access_token": DEFAULT_TOKEN,
           "graph_url": graph_url, **settings}
    return FacebookAudienceDestination(FacebookAudienceSettings.model_validate(raw))
