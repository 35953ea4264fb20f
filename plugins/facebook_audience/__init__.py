"""The Facebook Custom Audience destination (`plugin: facebook_audience`):
docs/destinations/facebook_audience.md."""

from __future__ import annotations

from collections.abc import Callable

from crossdock.destination import Destination
from crossdock.hookspecs import hookimpl
from crossdock.plugins.facebook_audience.destination import FacebookAudienceDestination
from crossdock.plugins.facebook_audience.settings import FacebookAudienceSettings

__all__ = ["FacebookAudienceDestination", "FacebookAudienceSettings", "register_destinations"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(FacebookAudienceDestination)
