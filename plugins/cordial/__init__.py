"""The Cordial destination (`plugin: cordial`): docs/destinations/cordial.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.cordial.destination import CordialDestination
from crossdock.plugins.cordial.settings import CordialSettings

__all__ = ["CordialDestination", "CordialSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(CordialDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.cordial.fake import demo_destination

    register(demo_destination(context))
