"""The Twilio destination (`plugin: twilio`): docs/destinations/twilio.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.twilio.destination import TwilioDestination
from crossdock.plugins.twilio.settings import TwilioSettings

__all__ = ["TwilioDestination", "TwilioSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(TwilioDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.twilio.fake import demo_destination

    register(demo_destination(context))
