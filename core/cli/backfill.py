"""`crossdock backfill`: a period's kept messages routed to one destination
(crossdock.replay.run_backfill)."""

from __future__ import annotations

import json
import time

import click

from crossdock.cli import common
from crossdock.views import age


@click.command()
@common.config_option
@click.option("-d", "--destination", required=True, help="The destination to backfill.")
@click.option("--since", required=True,
              help="Messages accepted at or after this: an ISO date or time (UTC unless it "
              "says otherwise), or a duration ago (7d).")
@click.option("--until", help="Messages accepted before this (default: up to now).")
@click.option("--json", "as_json", is_flag=True, help="The summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def backfill(config_path: str, destination: str, since: str, until: str | None,
             as_json: bool, quiet: bool) -> None:
    """Route the kept messages of a period to one destination (docs/delivery.md,
    "Backfill"): they are queued, and sent by the daemon (or `deliver --once -d NAME`) at the
    destination's own rate limit. An interrupted run continues where it stopped."""
    from crossdock.replay import BackfillReport, run_backfill

    start = common.when(since, "--since")
    end = common.when(until, "--until")
    assert start is not None
    loaded = common.load_or_exit(config_path)
    if destination not in {d.name for d in loaded.destinations}:
        raise click.BadParameter(
            f"no enabled destination {destination!r} in the config (known: "
            f"{', '.join(sorted(d.name for d in loaded.destinations)) or 'none'})",
            param_hint="-d/--destination")
    keep = loaded.config.outbox.keep_messages
    if start < time.time() - keep:
        common.err_console.print(
            "[yellow]warning:[/yellow] messages are kept for outbox.keep_messages "
            f"({age(keep)}): those accepted before then are no longer there to "
            "backfill", highlight=False)

    def progress(report: BackfillReport) -> None:
        if not quiet:
            common.err_console.print(
                f"backfill {destination}: {report.read} messages read, {report.queued} "
                f"queued, {report.already} already there, {report.filtered} filtered out",
                highlight=False, markup=False)

    with common.outbox_of(loaded) as outbox:
        report = run_backfill(loaded, outbox, destination, start, end, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        resumed = (f" (resumed after kept message {report.resumed_after})"
                   if report.resumed_after else "")
        common.console.print(
            f"backfill {destination}: {report.queued} rows queued, {report.already} already "
            f"there, {report.filtered} filtered out, {len(report.unshaped)} not shaped, of "
            f"{report.read} kept messages{resumed}", highlight=False)
    for message_id, problems in report.unshaped:
        common.err_console.print(f"{message_id}: {problems}", highlight=False, markup=False,
                                 soft_wrap=True)
