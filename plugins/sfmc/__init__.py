"""The Salesforce Marketing Cloud destination (`plugin: sfmc`): docs/destinations/sfmc.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.sfmc.destination import SfmcDestination
from crossdock.plugins.sfmc.settings import SfmcSettings

__all__ = ["SfmcDestination", "SfmcSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(SfmcDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.sfmc.fake import demo_destination

    register(demo_destination(context))
