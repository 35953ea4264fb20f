"""`crossdock validate`: check the config and every destination's settings."""

from __future__ import annotations

import click

from crossdock.cli import common


@click.command()
@common.config_option
def validate(config_path: str) -> None:
    """Check the config and every destination's settings; exit 1 listing the problems."""
    loaded = common.load_or_exit(config_path)
    names = ", ".join(d.name for d in loaded.destinations) or "none"
    common.console.print(f"[green]ok[/green]: {config_path} ({len(loaded.destinations)} "
                         f"enabled destinations: {names})", highlight=False)
