"""The `crossdock` command group: the options every command takes (-v, --log-format), the
built-in commands (one module each in this package) and those plugins add
(`register_commands`).

Exit codes: 0 success, 1 the command found problems (invalid config, bad input lines), 2
usage errors (click's own), 3 `deliver --once` saw messages go dead (EXIT_DEAD).
"""

from __future__ import annotations

import click
from rich.markup import escape

from crossdock import __version__
from crossdock.cli import (
    audiences,
    backfill,
    common,
    console,
    db,
    dead_letters,
    deliver,
    demo,
    exports,
    functions,
    plugins,
    profiles,
    route,
    run,
    send,
    status,
    validate,
)
from crossdock.errors import CrossdockError
from crossdock.logs import LOG_FORMATS, configure_logging


@click.group(cls=common.CrossdockGroup)
@click.version_option(__version__, prog_name="crossdock")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text",
              envvar="CROSSDOCK_LOG_FORMAT", show_default=True,
              help="json: one object per line (time, level, destination, message_id, "
                   "attempt, outcome).")
def cli(verbose: int, log_format: str) -> None:
    """Crossdock: receive customer data once, forward it to every destination."""
    configure_logging(verbose, log_format)
    _warn_of_plugin_failures(verbose)


for _command in (validate.validate, send.send, run.run, deliver.deliver, status.status,
                 dead_letters.dead_letters, backfill.backfill, demo.demo,
                 plugins.plugins_group, route.route_command, profiles.profiles_group,
                 audiences.audiences_group, functions.functions_group, exports.exports_group,
                 db.db_group, console.console_command):
    cli.add_command(_command)


def _warn_of_plugin_failures(verbose: int) -> None:
    """A plugin that failed to import is a warning for every command (an error only for the
    destinations that need it, from the config loader), with its traceback under -v."""
    from crossdock.plugin_manager import load_failures

    for failure in load_failures():
        hint = "" if verbose else " (-v shows the traceback)"
        common.err_console.print("[yellow]warning:[/yellow] " + escape(
            f"{failure.describe()}; destinations using it will not load{hint}"),
            highlight=False, soft_wrap=True)
        if verbose:
            common.err_console.print(failure.traceback.rstrip(), highlight=False, markup=False,
                                     soft_wrap=True)


def _attach_plugin_commands() -> None:
    """The commands plugins add: loading plugins costs time and may fail, so only `main`
    does it, once the built-in commands are in place."""
    from crossdock.plugin_manager import plugin_manager

    try:
        plugin_manager().hook.register_commands(cli=cli)
    except CrossdockError as exc:
        common.err_console.print(f"[red]{exc}[/red]")


def main() -> None:
    """The `crossdock` console script."""
    _attach_plugin_commands()
    cli()
