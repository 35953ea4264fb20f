"""`crossdock demo`: local fakes of the destinations, sample messages, what arrived."""

from __future__ import annotations

from pathlib import Path

import click

from crossdock.cli import common


@click.command()
@click.option("--messages", default=20, show_default=True, help="Sample messages to send.")
@click.option("--keep", type=click.Path(path_type=Path), help="Keep the demo folder here.")
def demo(messages: int, keep: Path | None) -> None:
    """Start local fakes of the destinations, forward sample messages, show what arrived."""
    from crossdock.demo import run_demo

    run_demo(common.console, messages=messages, keep=keep)
