"""The Google Ads destination (`plugin: google_ads`): docs/destinations/google_ads.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.google_ads.destination import GoogleAdsDestination
from crossdock.plugins.google_ads.settings import GoogleAdsSettings

__all__ = ["GoogleAdsDestination", "GoogleAdsSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(GoogleAdsDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.google_ads.fake import demo_destination

    register(demo_destination(context))
