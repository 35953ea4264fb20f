"""The MailUp destination (`plugin: mailup`): docs/destinations/mailup.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.mailup.destination import MailUpDestination
from crossdock.plugins.mailup.settings import MailUpSettings

__all__ = ["MailUpDestination", "MailUpSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(MailUpDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.mailup.fake import demo_destination

    register(demo_destination(context))
