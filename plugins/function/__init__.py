"""The function destination (`plugin: function`): operator JavaScript that turns each message
into the requests to send; docs/destinations/function.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.function.destination import FunctionDestination
from crossdock.plugins.function.settings import FunctionSettings

__all__ = ["FunctionDestination", "FunctionSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(FunctionDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.function.fake import demo_destination

    register(demo_destination(context))
