"""Every hook a Crossdock plugin can implement.

A plugin is a module (or an object) with functions decorated by `crossdock.hookimpl`. The
built-in destinations are registered in-process from `plugin_manager.DEFAULT_PLUGINS`;
third-party plugins through the `crossdock` entry-point group. Both take exactly these hooks,
and docs/hooks.md describes each one with its arguments (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from crossdock.testing.demo import DemoContext, DemoDestination

if TYPE_CHECKING:
    import click
    from jinja2.sandbox import SandboxedEnvironment

    from crossdock.delivery.sending import Sender
    from crossdock.destination import Destination

__all__ = ["DemoContext", "DemoDestination", "RegisterDemo", "RegisterDestination", "hookimpl"]

hookspec = pluggy.HookspecMarker("crossdock")
hookimpl = pluggy.HookimplMarker("crossdock")

#: the `register` a plugin's register_destinations gets
RegisterDestination = Callable[[type["Destination"]], None]
#: the `register` a plugin's register_demo_destinations gets
RegisterDemo = Callable[[DemoDestination], None]


@hookspec
def register_destinations(register: RegisterDestination) -> None:
    """Contribute destination types by calling register(DestinationSubclass)."""


@hookspec
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    """Contribute to `crossdock demo`: start the plugin's contract fake with
    context.serve(app) and call register(DemoDestination(...)) pointing at it."""


@hookspec
def register_senders(register: Callable[[str, Sender], None]) -> None:
    """Contribute senders for non-HTTP send kinds by calling register(kind, sender)."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the `crossdock` command-line tool."""


@hookspec
def prepare_jinja2_environment(env: SandboxedEnvironment) -> None:
    """Adjust the sandboxed Jinja2 environment used for mapping templates (add filters)."""
