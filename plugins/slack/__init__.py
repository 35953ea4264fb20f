"""The Slack incoming-webhook destination (`plugin: slack`): docs/destinations/slack.md."""

from __future__ import annotations

from collections.abc import Callable

from crossdock.destination import Destination
from crossdock.hookspecs import hookimpl
from crossdock.plugins.slack.destination import SlackDestination
from crossdock.plugins.slack.settings import SlackSettings

__all__ = ["SlackDestination", "SlackSettings", "register_destinations"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(SlackDestination)
