"""`crossdock db ...`: schema upgrades and moving an outbox between engines.

    crossdock db upgrade                      migrate the configured outbox (SQLite or PostgreSQL)
    crossdock db copy --from URL --to URL     copy queued, retrying and dead rows, the dedup
                                              window, the profile store and the audience
                                              members from one outbox to another

`copy` is how an operator moves from SQLite to PostgreSQL without losing queued messages (see
docs/postgresql.md): stop the daemons, copy, point the config at the new URL, start them.
What they do is crossdock.schema (upgrade_outbox, copy_database) and crossdock.outbox.copy.
"""

from __future__ import annotations

from pathlib import Path

import click

from crossdock.cli import common
from crossdock.outbox import open_outbox


def _source_exists(url: str) -> None:
    """Refuse a SQLite source that is not there: opening it would create an empty outbox and
    the copy would report "copied 0 rows" as if there were nothing to move."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if str(path) == ":memory:" or path.is_file():
        return
    hint = "" if path.is_absolute() else (
        f"; sqlite:///{path} is relative to the current folder (if you meant /{path}, an "
        f"absolute path takes four slashes: sqlite:////{path})")
    raise click.BadParameter(f"{url}: no such file {path.resolve()}{hint}",
                             param_hint="--from")


@click.group("db", cls=common.CrossdockGroup)
def db_group() -> None:
    """Outbox schema upgrades, and moving an outbox from one database to another."""


@db_group.command("upgrade")
@common.config_option
@click.option("--url", help="Upgrade this outbox URL instead of the configured one.")
def upgrade_command(config_path: str, url: str | None) -> None:
    """Create or upgrade the outbox schema (SQLite or PostgreSQL). Never drops queued rows;
    safe to run while daemons are running, and by many at once."""
    profiles = None
    if url is None:
        loaded = common.load_or_exit(config_path)
        url, profiles = loaded.outbox_url, loaded.config.profiles
    from crossdock.schema import upgrade_outbox

    applied = upgrade_outbox(url, profiles)
    from crossdock.outbox.dsn import redact

    shown = redact(url)
    if applied:
        click.echo(f"{shown}: applied {len(applied)} migrations: {', '.join(applied)}")
    else:
        click.echo(f"{shown}: already up to date")


@db_group.command("copy")
@click.option("--from", "source_url", required=True,
              help="Outbox to copy from, e.g. sqlite:///crossdock.db")
@click.option("--to", "target_url", required=True,
              help="Outbox to copy into, e.g. postgresql://crossdock@db/crossdock")
@click.option("--include-delivered", is_flag=True,
              help="Also copy delivered rows (history); by default only rows still to send "
                   "and dead letters.")
@click.option("--replace-profiles", is_flag=True,
              help="The target already has a profile store: delete it (profiles and audience "
                   "members) and copy the source's instead.")
@click.option("--skip-profiles", is_flag=True,
              help="Copy only the outbox rows and the dedup window; profiles and audience "
                   "members stay behind.")
def copy_command(source_url: str, target_url: str, include_delivered: bool,
                 replace_profiles: bool, skip_profiles: bool) -> None:
    """Copy queued, retrying and dead rows, the dedup window, the profile store and the
    audience members between outboxes.

    Stop every daemon using the source first: rows they hold leased arrive queued. Rows
    already in the target are skipped, so the copy can be run again after an interruption.
    A target with profiles of its own is refused (nothing is written) unless
    --replace-profiles or --skip-profiles says what to do with them."""
    if source_url == target_url:
        raise click.BadParameter("--from and --to are the same outbox", param_hint="--to")
    if replace_profiles and skip_profiles:
        raise click.BadParameter("--replace-profiles and --skip-profiles exclude each other",
                                 param_hint="--skip-profiles")
    from crossdock.schema import copy_database

    profiles = "replace" if replace_profiles else "skip" if skip_profiles else "copy"
    _source_exists(source_url)
    source = open_outbox(source_url)
    try:
        target = open_outbox(target_url)
        try:
            report = copy_database(source, target, include_delivered=include_delivered,
                                   profiles=profiles)
        finally:
            target.close()
    finally:
        source.close()
    click.echo(str(report))
