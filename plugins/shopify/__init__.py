"""The Shopify destination (`plugin: shopify`): docs/destinations/shopify.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.shopify.destination import ShopifyDestination
from crossdock.plugins.shopify.settings import ShopifySettings

__all__ = ["ShopifyDestination", "ShopifySettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(ShopifyDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.shopify.fake import demo_destination

    register(demo_destination(context))
