"""The Brevo destination (`plugin: brevo`): docs/destinations/brevo.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.brevo.destination import BrevoDestination
from crossdock.plugins.brevo.settings import BrevoSettings

__all__ = ["BrevoDestination", "BrevoSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(BrevoDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.brevo.fake import demo_destination

    register(demo_destination(context))
