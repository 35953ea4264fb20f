"""The Slack incoming-webhook destination (`plugin: slack`): docs/destinations/slack.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.slack.destination import SlackDestination
from crossdock.plugins.slack.settings import SlackSettings

__all__ = ["SlackDestination", "SlackSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(SlackDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.slack.fake import demo_destination

    register(demo_destination(context))
