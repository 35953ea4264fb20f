"""`crossdock audiences list | preview NAME | sync [NAME]`: the functions of
crossdock.audiences.report and .sync, which the console's Audiences page calls too."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.table import Table

from crossdock.cli import common


def _audiences(pipeline: Any, names: list[str] | None) -> list[Any]:
    from crossdock.audiences.spec import audiences_of
    from crossdock.audiences.sync import select

    try:
        return select(audiences_of(pipeline.loaded.config), names)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc


@click.group("audiences", cls=common.CrossdockGroup)
def audiences_group() -> None:
    """Audiences: people whose attributes meet a condition, synced to destinations."""


@audiences_group.command("list")
@common.config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(config_path: str, as_json: bool) -> None:
    """Each audience: condition, destinations, schedule, members now, last sync."""
    from crossdock.audiences.report import overview

    with common.opened_pipeline(config_path, "audiences") as (pipeline, _):
        rows = overview(pipeline)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        common.console.print("no audiences configured (see docs/audiences.md)")
        return
    table = Table("audience", "condition", "destinations", "schedule", "members", "last sync")
    for row in rows:
        schedule = row["schedule"] or "-"
        if row["sync_on_change"]:
            schedule += " + on change"
        synced = "never" if row["last_sync_at"] is None else time.strftime(
            "%Y-%m-%d %H:%M:%S", time.gmtime(row["last_sync_at"]))
        table.add_row(row["name"], row["condition"], ", ".join(row["destinations"]),
                      schedule, str(row["members"]), synced)
    common.console.print(table)


@audiences_group.command("preview")
@common.config_option
@click.argument("name")
@click.option("-n", "--limit", default=20, show_default=True, help="People listed per side.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def preview(config_path: str, name: str, limit: int, as_json: bool) -> None:
    """Who would enter and leave NAME if it synced now; changes nothing."""
    from crossdock.audiences import report

    with common.opened_pipeline(config_path, "audiences") as (pipeline, _):
        try:
            found = report.preview(pipeline, name)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    sides = {"entered": found["would_enter"], "exited": found["would_exit"]}
    click.echo(f"{name}: {found['evaluated']} profiles evaluated; "
               f"{len(sides['entered'])} would enter, {len(sides['exited'])} would leave")
    for kind, label in (("entered", "enter"), ("exited", "leave")):
        for person in sides[kind][:limit]:
            ids = ", ".join(f"{k} {v}" for k, v in person.items() if k != "profileId" and v)
            click.echo(f"  {label}: {person['profileId']}" + (f" ({ids})" if ids else ""))
        if len(sides[kind]) > limit:
            click.echo(f"  ... and {len(sides[kind]) - limit} more to {label}")


@audiences_group.command("sync")
@common.config_option
@click.argument("name", required=False)
def sync_(config_path: str, name: str | None) -> None:
    """Run a full sync now (of NAME, or of every audience): members updated and the
    audience_entered / audience_exited events queued for the audience's destinations."""
    from crossdock.audiences.sync import sync

    with common.opened_pipeline(config_path, "audiences") as (pipeline, _):
        audiences = _audiences(pipeline, [name] if name else None)
        report = sync(pipeline, audiences=audiences)
    for audience in audiences:
        click.echo(f"{audience.name}: {report.entered[audience.name]} entered, "
                   f"{report.exited[audience.name]} left")
    click.echo(f"{report.evaluated} profiles evaluated; {report.rows} outbox rows queued")
