"""The Salesforce Commerce Cloud destination (`plugin: sfcc`): docs/destinations/sfcc.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.sfcc.destination import SfccDestination
from crossdock.plugins.sfcc.settings import SfccSettings

__all__ = ["SfccDestination", "SfccSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(SfccDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.sfcc.fake import demo_destination

    register(demo_destination(context))
