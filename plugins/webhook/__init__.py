"""The generic webhook destination (`plugin: webhook`): docs/destinations/webhook.md."""

from __future__ import annotations

from collections.abc import Callable

from crossdock.destination import Destination
from crossdock.hookspecs import hookimpl
from crossdock.plugins.webhook.destination import WebhookDestination
from crossdock.plugins.webhook.settings import WebhookSettings

__all__ = ["WebhookDestination", "WebhookSettings", "register_destinations"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(WebhookDestination)
