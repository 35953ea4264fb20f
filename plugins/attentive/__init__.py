"""The Attentive destination (`plugin: attentive`): docs/destinations/attentive.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.attentive.destination import AttentiveDestination
from crossdock.plugins.attentive.settings import AttentiveSettings

__all__ = ["AttentiveDestination", "AttentiveSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(AttentiveDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.attentive.fake import demo_destination

    register(demo_destination(context))
