"""The VTEX Master Data destination (`plugin: vtex`): docs/destinations/vtex.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.vtex.destination import VtexDestination
from crossdock.plugins.vtex.settings import VtexSettings

__all__ = ["VtexDestination", "VtexSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(VtexDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.vtex.fake import demo_destination

    register(demo_destination(context))
