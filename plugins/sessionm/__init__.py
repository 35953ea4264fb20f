"""The SessionM destination (`plugin: sessionm`): docs/destinations/sessionm.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crossdock.hookspecs import hookimpl
from crossdock.plugins.sessionm.destination import SessionMDestination
from crossdock.plugins.sessionm.settings import SessionMSettings

if TYPE_CHECKING:
    from crossdock.destination import Destination
    from crossdock.testing.demo import DemoContext, DemoDestination

__all__ = ["SessionMDestination", "SessionMSettings"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(SessionMDestination)


@hookimpl
def register_demo_destinations(register: Callable[[DemoDestination], None],
                               context: DemoContext) -> None:
    from crossdock.plugins.sessionm.fake import demo_destination

    register(demo_destination(context))
