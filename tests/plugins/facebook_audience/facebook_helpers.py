"""Helpers for the facebook_audience plugin tests: membership items and destinations."""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.facebook_audience import (
    FacebookAudienceDestination,
    FacebookAudienceSettings,
)
from crossdock.plugins.facebook_audience.fake import DEFAULT_AUDIENCE, DEFAULT_TOKEN
from crossdock.testing.payloads import outbox_item, routed_payload

#: the app secret the fake checks appsecret_proof with (conftest's `fake`)
SECRET = "app-s3cret"
#: when the engine attempts the deliveries built by hand here (2026-11-29T12:00:00Z)
ATTEMPT_TIME = 1_795_953_600


def item(n: int, event: str = "audience_entered", traits: dict[str, Any] | None = None,
         attempted_at: float = ATTEMPT_TIME, **extra: Any) -> OutboxItem:
    """A membership change of person `n` as the audience engine emits it."""
    if traits is None:
        traits = {"email": f"Person{n}@Example.com ", "firstName": f"Ann-{n}",
                  "lastName": "O'Neil", "phone": f"+1 (650) 555-{n % 10000:04d}"}
    return outbox_item(routed_payload(n, **{"event": event, "traits": traits,
                                            "properties": {"audience": "high_value"}, **extra}),
                       attempted_at=attempted_at)


def destination(graph_url: str = "https://graph.facebook.com", **settings: Any
                ) -> FacebookAudienceDestination:
    raw = {"audience_id": DEFAULT_AUDIENCE, "access_token": DEFAULT_TOKEN,
           "graph_url": graph_url, **settings}
    return FacebookAudienceDestination(FacebookAudienceSettings.model_validate(raw))
