"""Helpers for the Slack plugin tests: routed items and a destination for a webhook URL."""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.slack import SlackDestination, SlackSettings
from crossdock.testing.payloads import outbox_item, routed_payload

REAL_URL = "https://hooks.slack.com/services/T0001/B0001/abcdefabcdef"


def item(n: int = 1, rendered: dict[str, Any] | None = None, **extra: Any) -> OutboxItem:
    if rendered is None:
        rendered = {"text": f"Order #{n} completed"}
    return outbox_item(routed_payload(n, **{"event": "Order Completed", "rendered": rendered,
                                            "properties": {"total": 42.5}, **extra}))


def destination(url: str = REAL_URL, **settings: Any) -> SlackDestination:
    any_host = not url.startswith("https://hooks.slack.com/")
    return SlackDestination(SlackSettings.model_validate(
        {"webhook_url": url, "allow_any_host": any_host, **settings}))
