"""The Mailchimp destination (`plugin: mailchimp`): docs/destinations/mailchimp.md."""

from __future__ import annotations

from collections.abc import Callable

from crossdock.destination import Destination
from crossdock.hookspecs import hookimpl
from crossdock.plugins.mailchimp.destination import MailchimpDestination
from crossdock.plugins.mailchimp.settings import MailchimpSettings

__all__ = ["MailchimpDestination", "MailchimpSettings", "register_destinations"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(MailchimpDestination)
