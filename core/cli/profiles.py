"""`crossdock profiles show ID`, `crossdock profiles delete ID` and `crossdock profiles
attributes`.

ID is a profile id, a userId, an anonymousId or an email.
"""

from __future__ import annotations

import json

import click
from rich.table import Table

from crossdock.cli import common
from crossdock.outbox.base import shared_sql
from crossdock.profiles.store import Deleted


@click.group("profiles", cls=common.CrossdockGroup)
def profiles_group() -> None:
    """Look at and erase the people in the profile store."""


@profiles_group.command("show")
@common.config_option
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(config_path: str, ref: str, as_json: bool) -> None:
    """Print a profile: attributes, identities, consent, sessions, merges."""
    with (common.opened_pipeline(config_path, "profiles", read_only=True) as (pipeline, store),
          pipeline.outbox.transaction() as tx):
        profile = store.show(shared_sql(tx), ref)
    if profile is None:
        raise click.ClickException(f"no profile for {ref!r} (tried profile id, userId, "
                                   "anonymousId, email)")
    if as_json:
        click.echo(json.dumps(profile, indent=2))
        return
    kind = f"known, userId {profile['userId']}" if profile["known"] else "anonymous"
    click.echo(f"profile {profile['id']} ({kind}), {profile['messages']} messages, "
               f"since {profile['created_at']}")
    click.echo("identities:")
    for kind_, values in profile["identities"].items():
        click.echo(f"  {kind_}: {', '.join(values)}")
    for part in ("system", "custom"):
        click.echo(f"{part} attributes:")
        for name, info in profile["attributes"][part].items():
            click.echo(f"  {name} ({info['type']}): {json.dumps(info['value'])}")
    click.echo("consent:")
    for purpose, info in profile["consent"].items():
        said = " (default: never said)" if info["default"] else ""
        click.echo(f"  {purpose}: {'granted' if info['granted'] else 'denied'}{said}")
    click.echo("sessions:")
    for s in profile["sessions"]:
        click.echo(f"  {s['sessionId']}: {s['started_at']} .. {s['ended_at'] or 'open'}, "
                   f"{s['messages']} messages")
    click.echo("merges:")
    for m in profile["merges"]:
        click.echo(f"  {m['from']} -> {m['into']} at {m['at']}: {m['reason']}")
    if profile["rejections"]:
        click.echo("attribute problems (latest first):")
        for r in profile["rejections"]:
            click.echo(f"  {r['attribute']}: {r['detail']}")


@profiles_group.command("attributes")
@common.config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def attributes(config_path: str, as_json: bool) -> None:
    """List the account's attribute definitions: name, type (fixed by its first datapoint),
    first seen, how many profiles hold it, rejected datapoints of another type."""
    with (common.opened_pipeline(config_path, "profiles") as (pipeline, store),
          pipeline.outbox.transaction() as tx):
        definitions = store.definitions(shared_sql(tx))
    if as_json:
        click.echo(json.dumps(definitions, indent=2))
        return
    table = Table("name", "kind", "type", "first seen", "profiles", "rejected")
    for d in definitions:
        table.add_row(d["name"], d["part"], d["type"], d["first_seen"], str(d["profiles"]),
                      str(d["rejected"]))
    common.console.print(table)


def erased_person_keys(deleted: Deleted) -> list[str]:
    """The person keys (crossdock.pipeline.person_key) an erased person's messages were
    kept under: their profiles, and their userIds and anonymousIds."""
    keys = [f"p:{p}" for p in (deleted.profile_id, *deleted.merged)]
    keys += [f"u:{v}" for v in deleted.identities.get("userId", [])]
    keys += [f"a:{v}" for v in deleted.identities.get("anonymousId", [])]
    return keys


@profiles_group.command("delete")
@common.config_option
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(config_path: str, ref: str, yes: bool) -> None:
    """Erase a person and the profiles merged into them; takes them out of every audience
    and routes a `profile_deleted` system event to destinations whose filter subscribes to it."""
    from crossdock.audiences.sync import erased_exits

    with common.opened_pipeline(config_path, "profiles") as (pipeline, store):
        outbox = pipeline.outbox
        with outbox.transaction() as tx:
            found = store.find(shared_sql(tx), ref)
        if found is None:
            raise click.ClickException(f"no profile for {ref!r}")
        if not yes:
            click.confirm(f"erase profile {found} and everything it holds?", abort=True)
        with outbox.transaction() as tx:
            db = shared_sql(tx)
            deleted = store.delete(db, found)
            assert deleted is not None
            # The messages kept for replay and backfill are theirs too: none outlives the
            # erasure (the profile_deleted event routed below is not kept).
            outbox.forget_people(erased_person_keys(deleted))
            # Audience exits first: a destination that erases the person on profile_deleted
            # (a Mailchimp member deleted) would refuse to untag them afterwards.
            events = erased_exits(pipeline, db, [deleted.profile_id, *deleted.merged])
            exits = len(events)
            if deleted.event is not None:
                events.append(deleted.event)
            rows = 0
            if events and pipeline.loaded.destinations:
                rows = pipeline.accept_enriched(events)
    left = f"; left {exits} audiences" if exits else ""
    click.echo(f"deleted profile {deleted.profile_id} ({len(deleted.merged)} merged profiles)"
               f"{left}; {rows} outbox rows queued for destinations")
