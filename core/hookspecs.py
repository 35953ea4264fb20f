"""Every hook a Crossdock plugin can implement.

Plugins are modules (or objects) registered under the `crossdock` entry-point group and
decorated with `crossdock.hookimpl`. Built-in plugins use exactly the same path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from jinja2.sandbox import SandboxedEnvironment

    from crossdock.destination import Destination

hookspec = pluggy.HookspecMarker("crossdock")
hookimpl = pluggy.HookimplMarker("crossdock")


@hookspec
def register_destinations(register: Callable[[type[Destination]], None]) -> None:
    """Contribute destination types by calling register(DestinationSubclass)."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the `crossdock` command-line tool."""


@hookspec
def prepare_jinja2_environment(env: SandboxedEnvironment) -> None:
    """Adjust the sandboxed Jinja2 environment used for mapping templates (add filters)."""
