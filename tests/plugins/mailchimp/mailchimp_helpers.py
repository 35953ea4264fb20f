"""Helpers for the Mailchimp plugin tests: routed items and destinations."""

from __future__ import annotations

from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.mailchimp import MailchimpDestination, MailchimpSettings
from crossdock.plugins.mailchimp.fake import DEFAULT_KEY, DEFAULT_LIST
from crossdock.testing.payloads import outbox_item, routed_payload


def item(n: int, kind: str = "identify", event: str | None = None,
         traits: dict[str, Any] | None = None, properties: dict[str, Any] | None = None,
         **extra: Any) -> OutboxItem:
    if traits is None:
        traits = {"email": f"person{n}@example.com"}
    return outbox_item(routed_payload(n, **{"type": kind, "event": event, "traits": traits,
                                            "properties": properties or {}, **extra}))


def audience(n: int, entered: bool = True, name: str = "high_value", email: str | None = None
             ) -> OutboxItem:
    return item(n, "track", "audience_entered" if entered else "audience_exited",
                traits={"email": email or f"person{n}@example.com"},
                properties={"audience": name})


def destination(base_url: str | None = None, **settings: Any) -> MailchimpDestination:
    raw: dict[str, Any] = {"api_key": DEFAULT_KEY, "list_id": DEFAULT_LIST, **settings}
    if base_url is not None:
        raw["base_url"] = base_url
    return MailchimpDestination(MailchimpSettings.model_validate(raw))
