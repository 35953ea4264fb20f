"""`crossdock audiences list | preview NAME | sync [NAME]` ."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.table import Table

from crossdock.cli import common
from crossdock.outbox.base import shared_sql


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
    from crossdock.audiences import membership

    with common.opened_pipeline(config_path, "audiences") as (pipeline, _):
        audiences = _audiences(pipeline, None)
        with pipeline.outbox.transaction() as tx:
            db = shared_sql(tx)
            counts = membership.member_counts(db)
            last = {a.name: membership.last_sync(db, a.name) for a in audiences}
    rows = [{"name": a.name, "condition": a.config.condition,
             "destinations": a.config.destinations, "schedule": a.config.schedule,
             "sync_on_change": a.config.sync_on_change, "members": counts.get(a.name, 0),
             "last_sync_at": last[a.name]} for a in audiences]
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
    from crossdock.audiences.sync import plan_sync

    with common.opened_pipeline(config_path, "audiences") as (pipeline, _):
        audiences = _audiences(pipeline, [name])
        with pipeline.outbox.transaction() as tx:
            db = shared_sql(tx)
            plan = plan_sync(db, audiences)
            people = {c.profile_id: _who(db, c) for c in plan.changes}
    sides = {kind: [{"profileId": c.profile_id, **people[c.profile_id]}
                    for c in plan.changes if c.kind == kind] for kind in ("entered", "exited")}
    if as_json:
        click.echo(json.dumps({"audience": name, "evaluated": plan.evaluated,
                               "would_enter": sides["entered"],
                               "would_exit": sides["exited"]}, indent=2))
        return
    click.echo(f"{name}: {plan.evaluated} profiles evaluated; "
               f"{len(sides['entered'])} would enter, {len(sides['exited'])} would leave")
    for kind, label in (("entered", "enter"), ("exited", "leave")):
        for person in sides[kind][:limit]:
            ids = ", ".join(f"{k} {v}" for k, v in person.items() if k != "profileId" and v)
            click.echo(f"  {label}: {person['profileId']}" + (f" ({ids})" if ids else ""))
        if len(sides[kind]) > limit:
            click.echo(f"  ... and {len(sides[kind]) - limit} more to {label}")


def _who(db: Any, change: Any) -> dict[str, Any]:
    if change.snapshot is not None:
        ids = change.snapshot.get("identities") or {}
        return {"userId": ids.get("userId"), "email": ids.get("email")}
    row = db.execute("SELECT user_id FROM profiles WHERE id = ?", [change.profile_id]).fetchone()
    email = db.execute("SELECT value FROM profile_identities WHERE profile_id = ? AND "
                       "type = 'email' ORDER BY last_seen DESC", [change.profile_id]).fetchone()
    return {"userId": row[0] if row else None, "email": email[0] if email else None}


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
