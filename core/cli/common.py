"""What every command module of `crossdock.cli` shares: the consoles, the --config option,
opening the config (or exiting 1 with its problems) and the config's outbox or pipeline, the
command group class, and reading the --since/--until times.

The consoles are read as `common.console` when a command runs, never imported by name: the
tests give this module wider ones (an xdist worker's terminal is 80 columns).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from crossdock.config import LoadedConfig
from crossdock.errors import ConfigError, CrossdockError
from crossdock.loader import load_config
from crossdock.views import parse_when

if TYPE_CHECKING:
    from crossdock.outbox import Outbox
    from crossdock.pipeline import Pipeline
    from crossdock.profiles import ProfileStore

#: how wide piped output may be (tables only take the room their cells need)
PIPED_WIDTH = 240


def _console(*, stderr: bool = False) -> Console:
    """A console for the commands' output. On a terminal rich uses the terminal's width;
    piped (a log, grep, CI) it assumes 80 columns and cuts table cells short ("destina…",
    "slack-o…") and wraps long lines, so it gets room unless COLUMNS says how much."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


console = _console()
err_console = _console(stderr=True)


def load_or_exit(config_path: str, *, read_only: bool = False) -> LoadedConfig:
    """The config, or exit 1 after printing every problem by its path. `read_only` for the
    commands that send nothing: a destination whose secret is unset is left out (a warning),
    not an error (crossdock.loader.parse_config)."""
    try:
        loaded = load_config(config_path, read_only=read_only)
    except ConfigError as exc:
        err_console.print(f"[red]{config_path}: invalid config[/red]", soft_wrap=True)
        for problem in exc.problems:
            # soft_wrap: one problem per line even when piped (rich wraps at 80 columns).
            err_console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(1) from exc
    for warning in loaded.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    return loaded


@contextmanager
def outbox_of(loaded: LoadedConfig) -> Iterator[Outbox]:
    """The config's outbox (SQLite or PostgreSQL), closed on the way out."""
    from crossdock.outbox import open_outbox

    outbox = open_outbox(loaded.outbox_url)
    try:
        yield outbox
    finally:
        outbox.close()


@contextmanager
def opened(config_path: str, *, read_only: bool = False) -> Iterator[tuple[LoadedConfig, Outbox]]:
    """The config (load_or_exit) and its outbox, closed on the way out."""
    loaded = load_or_exit(config_path, read_only=read_only)
    with outbox_of(loaded) as outbox:
        yield loaded, outbox


@contextmanager
def opened_pipeline(config_path: str, command: str, *, read_only: bool = False,
                    ) -> Iterator[tuple[Pipeline[ProfileStore], ProfileStore]]:
    """A pipeline on the config's outbox and the profile store it writes, which lives in the
    outbox's own database (docs/profiles.md); `command` names the command in the error when
    there is none."""
    from crossdock.pipeline import build_pipeline

    with opened(config_path, read_only=read_only) as (loaded, outbox):
        pipeline = build_pipeline(loaded, outbox)
        if pipeline.profiles is None:
            raise click.ClickException(f"{command}: no profile store for this outbox")
        yield pipeline, pipeline.profiles


config_option = click.option(
    "-c", "--config", "config_path", default="crossdock.yaml", envvar="CROSSDOCK_CONFIG",
    show_default=True, help="Path of crossdock.yaml.",
)


class CrossdockGroup(click.Group):
    """A command group: an error Crossdock raises on purpose (an outbox it cannot open, such
    as a PostgreSQL server that is down) ends any command with its message on one line and
    exit code 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrossdockError as exc:
            raise click.ClickException(" ".join(str(exc).split())) from exc

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """`-v` and `--log-format` are the root group's options, yet operators add them at
        the end of the line they just ran (`crossdock run -v`); click would refuse them
        there. Before a `--`, they are taken to the front wherever they stand."""
        if ctx.parent is None:
            end = args.index("--") if "--" in args else len(args)
            front: list[str] = []
            rest: list[str] = []
            words = iter(args[:end])
            for arg in words:
                if _is_verbose(arg) or arg.startswith("--log-format="):
                    front.append(arg)
                elif arg == "--log-format":
                    front += [arg, next(words, "")]
                else:
                    rest.append(arg)
            args = [*front, *rest, *args[end:]]
        return super().parse_args(ctx, args)


def _is_verbose(arg: str) -> bool:
    return arg == "--verbose" or (len(arg) > 1 and arg.startswith("-") and set(arg[1:]) == {"v"})


def when(value: str | None, param: str) -> float | None:
    """--since/--until: an ISO date or time (UTC unless it says otherwise), or a duration
    meaning that long ago (2h, 7d)."""
    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param) from None
