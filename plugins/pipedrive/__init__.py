"""The Pipedrive destination (`plugin: pipedrive`): docs/destinations/pipedrive.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.pipedrive.destination import PipedriveDestination
from crossdock.plugins.pipedrive.settings import PipedriveSettings

__all__ = ["PipedriveDestination", "PipedriveSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(PipedriveDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.pipedrive.fake import demo_destination

    register(demo_destination(context))
