"""The SessionM destination (`plugin: sessionm`): docs/destinations/sessionm.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.sessionm.destination import SessionMDestination
from crossdock.plugins.sessionm.settings import SessionMSettings

__all__ = ["SessionMDestination", "SessionMSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(SessionMDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.sessionm.fake import demo_destination

    register(demo_destination(context))
