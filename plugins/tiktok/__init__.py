"""The TikTok destination (`plugin: tiktok`): docs/destinations/tiktok.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.tiktok.destination import TikTokDestination
from crossdock.plugins.tiktok.settings import TikTokSettings

__all__ = ["TikTokDestination", "TikTokSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(TikTokDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.tiktok.fake import demo_destination

    register(demo_destination(context))
