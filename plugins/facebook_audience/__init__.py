"""The Facebook Custom Audience destination (`plugin: facebook_audience`):
docs/destinations/facebook_audience.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.facebook_audience.destination import FacebookAudienceDestination
from crossdock.plugins.facebook_audience.settings import FacebookAudienceSettings

__all__ = ["FacebookAudienceDestination", "FacebookAudienceSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(FacebookAudienceDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.facebook_audience.fake import demo_destination

    register(demo_destination(context))
