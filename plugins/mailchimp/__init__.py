"""The Mailchimp destination (`plugin: mailchimp`): docs/destinations/mailchimp.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.mailchimp.destination import MailchimpDestination
from crossdock.plugins.mailchimp.settings import MailchimpSettings

__all__ = ["MailchimpDestination", "MailchimpSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(MailchimpDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.mailchimp.fake import demo_destination

    register(demo_destination(context))
