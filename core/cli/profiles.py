"""`crossdock profiles show ID`, `crossdock profiles delete ID`, `crossdock profiles
attributes` and `crossdock profiles dictionary`.

ID is a profile id, a userId, an anonymousId or an email (`--by` says which, to look it up as
that only). Show and delete are crossdock.people's `look_up` and `erase`, which the console's
Profiles page calls too; the dictionary is crossdock.profiles.dictionary's `read_dictionary`,
as on the console's Data dictionary page.
"""

from __future__ import annotations

import json
import time

import click
from rich.table import Table

from crossdock.cli import common
from crossdock.outbox.base import shared_sql
from crossdock.profiles.attributes import LOOKUP_KINDS

by_option = click.option(
    "--by", type=click.Choice(LOOKUP_KINDS), default=None,
    help="Look ID up as this only (default: profile id, userId, anonymousId, then email).")


@click.group("profiles", cls=common.CrossdockGroup)
def profiles_group() -> None:
    """Look at and erase the people in the profile store."""


def _nobody(ref: str, by: str | None) -> click.ClickException:
    tried = by or "profile id, userId, anonymousId, email"
    return click.ClickException(f"no profile for {ref!r} (tried {tried})")


@profiles_group.command("show")
@common.config_option
@click.argument("ref")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(config_path: str, ref: str, by: str | None, as_json: bool) -> None:
    """Print a profile: attributes, identities, consent, sessions, audiences, merges."""
    from crossdock.people import look_up

    with (common.opened_pipeline(config_path, "profiles", read_only=True) as (pipeline, store),
          pipeline.outbox.transaction() as tx):
        try:
            profile = look_up(store, shared_sql(tx), ref, by)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if profile is None:
        raise _nobody(ref, by)
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
    click.echo("audiences:")
    for a in profile["audiences"]:
        click.echo(f"  {a['audience']} since {a['entered_at']}")
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


@profiles_group.command("delete")
@common.config_option
@click.argument("ref")
@by_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(config_path: str, ref: str, by: str | None, yes: bool) -> None:
    """Erase a person and the profiles merged into them; takes them out of every audience
    and routes a `profile_deleted` system event to destinations whose filter subscribes to it."""
    from crossdock.people import erase

    with common.opened_pipeline(config_path, "profiles") as (pipeline, store):
        with pipeline.outbox.transaction() as tx:
            found = store.find(shared_sql(tx), ref, by)
        if found is None:
            raise _nobody(ref, by)
        if not yes:
            click.confirm(f"erase profile {found} and everything it holds?", abort=True)
        erased = erase(pipeline, found, "profileId")
    if erased is None:  # erased by someone else meanwhile
        raise _nobody(found, "profileId")
    left = f"; left {erased.audiences_left} audiences" if erased.audiences_left else ""
    click.echo(f"deleted profile {erased.profile_id} ({len(erased.merged)} merged profiles)"
               f"{left}; {erased.rows} outbox rows queued for destinations")


def _when(at: float) -> str:
    """A time in a table: to the second, UTC (--json has it in full)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


@profiles_group.command("dictionary")
@common.config_option
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 366),
              help="Days of per-day volume shown, ending today (UTC).")
@click.option("--kind", type=click.Choice(["event", "property", "trait"]), default=None,
              help="Only events, event properties or user attributes (traits).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dictionary(config_path: str, days: int, kind: str | None, as_json: bool) -> None:
    """The data dictionary and data health: every event name, event property and user
    attribute seen, its types, first and last seen, datapoints per day, and the datapoints
    the attribute rules rejected, by rule (docs/profiles.md)."""
    from crossdock.profiles.dictionary import read_dictionary

    with (common.opened_pipeline(config_path, "profiles", read_only=True) as (pipeline, store),
          pipeline.outbox.transaction() as tx):
        db = shared_sql(tx)
        store.migrate(db)
        found = read_dictionary(db, days=days, kind=kind)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    if not found.entries and not found.rejections:
        common.console.print("nothing seen yet: the dictionary fills as messages are accepted")
        return
    table = Table("kind", "name", "types", "first seen", "last seen", "total",
                  "per day", "rejected",
                  caption=f"per day: {found.days[0]} .. {found.days[-1]} (UTC), oldest first")
    for e in found.entries:
        types = ", ".join(f"{t} {n}" for t, n in e.types.items())
        if e.defined_type is not None:
            types += f" (defined {e.defined_type})"
        table.add_row(e.kind, e.name, types, _when(e.first_seen), _when(e.last_seen),
                      str(e.total),
                      " ".join(str(n) for n in e.per_day),
                      ", ".join(f"{r} {n}" for r, n in e.rejected.items()))
    common.console.print(table)
    if found.rejections:
        rejected = Table("attribute", "rule", "rejected", "last seen")
        for r in found.rejections:
            rejected.add_row(r.name, r.label, str(r.count), _when(r.last_seen))
        common.console.print(rejected)
        common.console.print("rejected by rule: " + ", ".join(
            f"{rule} {n}" for rule, n in found.by_rule().items()))
