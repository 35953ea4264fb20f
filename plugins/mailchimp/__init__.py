"""The Mailchimp destination (`plugin: mailchimp`): docs/destinations/mailchimp.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crossdock.hookspecs import hookimpl
from crossdock.plugins.mailchimp.destination import MailchimpDestination
from crossdock.plugins.mailchimp.settings import MailchimpSettings

if TYPE_CHECKING:
    from crossdock.destination import Destination
    from crossdock.testing.demo import DemoContext, DemoDestination

__all__ = ["MailchimpDestination", "MailchimpSettings"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(MailchimpDestination)


@hookimpl
def register_demo_destinations(register: Callable[[DemoDestination], None],
                               context: DemoContext) -> None:
    from crossdock.plugins.mailchimp.fake import demo_destination

    register(demo_destination(context))
