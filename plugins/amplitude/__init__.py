"""The Amplitude destination (`plugin: amplitude`): docs/destinations/amplitude.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.amplitude.destination import AmplitudeDestination
from crossdock.plugins.amplitude.settings import AmplitudeSettings

__all__ = ["AmplitudeDestination", "AmplitudeSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(AmplitudeDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.amplitude.fake import demo_destination

    register(demo_destination(context))
