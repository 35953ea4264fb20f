"""The Facebook Custom Audience destination (`plugin: facebook_audience`):
docs/destinations/facebook_audience.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crossdock.hookspecs import hookimpl
from crossdock.plugins.facebook_audience.destination import FacebookAudienceDestination
from crossdock.plugins.facebook_audience.settings import FacebookAudienceSettings

if TYPE_CHECKING:
    from crossdock.destination import Destination
    from crossdock.testing.demo import DemoContext, DemoDestination

__all__ = ["FacebookAudienceDestination", "FacebookAudienceSettings"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(FacebookAudienceDestination)


@hookimpl
def register_demo_destinations(register: Callable[[DemoDestination], None],
                               context: DemoContext) -> None:
    from crossdock.plugins.facebook_audience.fake import demo_destination

    register(demo_destination(context))
