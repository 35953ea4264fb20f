"""The generic webhook destination (`plugin: webhook`): docs/destinations/webhook.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crossdock.hookspecs import hookimpl
from crossdock.plugins.webhook.destination import WebhookDestination
from crossdock.plugins.webhook.settings import WebhookSettings

if TYPE_CHECKING:
    from crossdock.destination import Destination
    from crossdock.testing.demo import DemoContext, DemoDestination

__all__ = ["WebhookDestination", "WebhookSettings"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(WebhookDestination)


@hookimpl
def register_demo_destinations(register: Callable[[DemoDestination], None],
                               context: DemoContext) -> None:
    from crossdock.plugins.webhook.fake import demo_destination

    register(demo_destination(context))
