"""The SessionM destination (`plugin: sessionm`): docs/destinations/sessionm.md."""

from __future__ import annotations

from collections.abc import Callable

from crossdock.destination import Destination
from crossdock.hookspecs import hookimpl
from crossdock.plugins.sessionm.destination import SessionMDestination
from crossdock.plugins.sessionm.settings import SessionMSettings

__all__ = ["SessionMDestination", "SessionMSettings", "register_destinations"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(SessionMDestination)
