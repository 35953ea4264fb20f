"""The generic webhook destination (`plugin: webhook`): docs/destinations/webhook.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.webhook.destination import WebhookDestination
from crossdock.plugins.webhook.settings import WebhookSettings

__all__ = ["WebhookDestination", "WebhookSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(WebhookDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.webhook.fake import demo_destination

    register(demo_destination(context))
