"""`crossdock dead-letters list|replay`: what crossdock.views reads of the dead letters, and
replays planned by crossdock.replay."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click
from rich.table import Table

from crossdock.cli import common
from crossdock.outbox.base import RowQuery
from crossdock.views import MissingRows, UnknownDestination, replay_rows
from crossdock.views import dead_letters as read_dead_letters


@click.group("dead-letters")
def dead_letters() -> None:
    """Inspect and replay messages that could not be delivered."""


def _checked(error: UnknownDestination) -> click.BadParameter:
    return click.BadParameter(str(error), param_hint="-d/--destination")


@dead_letters.command("list")
@common.config_option
@click.option("-d", "--destination", help="Only this destination.")
@click.option("-n", "--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dead_letters_list(config_path: str, destination: str | None, limit: int,
                      as_json: bool) -> None:
    """List dead letters with their reasons."""
    with common.opened(config_path, read_only=True) as (loaded, outbox):
        try:
            letters = read_dead_letters(loaded, outbox, destination, limit)
        except UnknownDestination as exc:
            raise _checked(exc) from exc
    if as_json:
        click.echo(json.dumps([asdict(letter) for letter in letters], indent=2, default=str))
        return
    table = Table("id", "destination", "message", "attempts", "failed at", "reason")
    for letter in letters:
        failed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.failed_at))
        table.add_row(str(letter.id), letter.destination, letter.message_id,
                      str(letter.attempts), failed, letter.reason)
    common.console.print(table)


@dead_letters.command("replay")
@common.config_option
@click.option("-d", "--destination", help="Only this destination.")
@click.option("--reason", help="Only rows whose reason contains this text.")
@click.option("--since", help="Only rows that died (or were delivered) at or after this: "
              "an ISO date or time, or a duration ago (2h).")
@click.option("--until", help="Only rows that died (or were delivered) before this.")
@click.option("--as-stored", is_flag=True,
              help="Send the payloads rendered when the messages were accepted, instead of "
              "routing them again through the current filter and mapping.")
@click.option("--delivered", is_flag=True,
              help="Re-deliver delivered rows (needs -d) instead of dead letters.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--yes", is_flag=True, help="Replay everything without asking.")
@click.argument("ids", nargs=-1, type=int)
def dead_letters_replay(config_path: str, destination: str | None, reason: str | None,
                        since: str | None, until: str | None, as_stored: bool,
                        delivered: bool, dry_run: bool, as_json: bool, yes: bool,
                        ids: tuple[int, ...]) -> None:
    """Queue dead letters again (all, the filters', or the given ids), routed through the
    current filter and mapping from their kept messages (docs/delivery.md, "Replay")."""
    from crossdock.replay import plan_replay, requeue

    if delivered and destination is None:
        raise click.UsageError("--delivered re-delivers to one destination: give -d NAME")
    query = RowQuery("delivered" if delivered else "dead", destination, list(ids) or None,
                     reason, common.when(since, "--since"), common.when(until, "--until"))
    everything = not (ids or destination or reason or since or until)
    what = "delivered row" if delivered else "dead letter"
    with common.opened(config_path) as (loaded, outbox):
        try:
            rows = replay_rows(loaded, outbox, query)
        except UnknownDestination as exc:
            raise _checked(exc) from exc
        except MissingRows as exc:
            raise click.ClickException(str(exc)) from exc
        plans = plan_replay(loaded, outbox, rows, as_stored=as_stored)
        if everything and rows and not dry_run and not yes:
            click.confirm(f"replay all {len(rows)} dead letters?", abort=True,
                          err=True)
        count = 0 if dry_run else requeue(outbox, query.state, plans)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "replayed": count,
                               "rows": [p.to_json() for p in plans]}, indent=2, default=str))
        return
    if dry_run:
        for plan in plans:
            common.console.print(f"{plan.row.id} {plan.row.destination} "
                                 f"{plan.row.message_id}: {plan.how}", highlight=False,
                                 markup=False)
            if plan.payload is not None:
                common.console.print("  " + json.dumps(plan.payload, default=str),
                                     highlight=False, markup=False, soft_wrap=True)
        common.console.print(f"would replay {sum(p.queued for p in plans)} of {len(plans)} "
                             f"{what}s (dry run: nothing changed)", highlight=False)
        return
    for plan in plans:
        if not plan.queued:
            common.err_console.print(
                f"{plan.row.id} {plan.row.destination} {plan.row.message_id}: "
                f"{plan.how}{': ' + plan.detail if plan.detail else ''}",
                highlight=False, markup=False, soft_wrap=True)
    hows: dict[str, int] = {}
    for plan in plans:
        if plan.queued:
            hows[plan.how] = hows.get(plan.how, 0) + 1
    detail = ", ".join(f"{n} {how}" for how, n in hows.items())
    common.console.print(f"replayed {count} {what}s" + (f" ({detail})" if detail else ""),
                         highlight=False)
