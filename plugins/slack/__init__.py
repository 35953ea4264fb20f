"""The Slack incoming-webhook destination (`plugin: slack`): docs/destinations/slack.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crossdock.hookspecs import hookimpl
from crossdock.plugins.slack.destination import SlackDestination
from crossdock.plugins.slack.settings import SlackSettings

if TYPE_CHECKING:
    from crossdock.destination import Destination
    from crossdock.testing.demo import DemoContext, DemoDestination

__all__ = ["SlackDestination", "SlackSettings"]


@hookimpl
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    register(SlackDestination)


@hookimpl
def register_demo_destinations(register: Callable[[DemoDestination], None],
                               context: DemoContext) -> None:
    from crossdock.plugins.slack.fake import demo_destination

    register(demo_destination(context))
