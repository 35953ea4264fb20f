"""`crossdock deliver --once`: drain what is due and exit (crossdock.delivery.deliver_once)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

import click

from crossdock.cli import common
from crossdock.outbox.base import DestinationCounts

if TYPE_CHECKING:
    from crossdock.delivery import DeliveryReport

#: `crossdock deliver --once` exit code when messages went dead during the run (cron mails it)
EXIT_DEAD = 3
#: seconds between `crossdock deliver --once` progress lines on stderr
PROGRESS_EVERY = 5.0


@click.command()
@common.config_option
@click.option("--once", is_flag=True, required=True, help="Drain what is due now, then exit.")
@click.option("-d", "--destination", "destinations", multiple=True,
              help="Only this destination (repeatable).")
@click.option("--max-time", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop leasing after this long; unsent rows go back to the queue.")
@click.option("--limit", type=click.IntRange(min=1),
              help="Attempt at most this many messages in all.")
@click.option("--json", "as_json", is_flag=True, help="The summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def deliver(config_path: str, once: bool, destinations: tuple[str, ...],
            max_time: float | None, limit: int | None, as_json: bool, quiet: bool) -> None:
    """Deliver what is due and exit (for cron).

    Progress goes to stderr every few seconds, the summary to stdout. Exit 0 when nothing
    went dead, 3 when messages went dead during the run (see `crossdock dead-letters list`).
    """
    from crossdock.delivery import DrainBound, deliver_once

    loaded = common.load_or_exit(config_path)
    known = [d.name for d in loaded.destinations]
    unknown = [name for name in destinations if name not in known]
    if unknown:
        raise click.BadParameter(
            f"no enabled destination {', '.join(map(repr, unknown))} (enabled: "
            f"{', '.join(known) or 'none'})", param_hint="'-d' / '--destination'")
    started = time.time()
    bound = DrainBound(deadline=None if max_time is None else started + max_time, limit=limit)
    with common.outbox_of(loaded) as outbox:
        counts = outbox.counts()
        names = list(destinations) or known
        waiting = _queued(counts, names)

        def progress(report: DeliveryReport) -> None:
            settled = report.delivered + report.retried + report.dead
            common.err_console.print(
                f"deliver: {settled} of {waiting} queued settled (delivered "
                f"{report.delivered}, retry later {report.retried}, dead {report.dead}), "
                f"{time.time() - started:.0f}s", highlight=False, soft_wrap=True)

        report = asyncio.run(deliver_once(
            loaded, outbox, bound=bound, destinations=destinations or None,
            progress=None if quiet else progress,
            progress_every=PROGRESS_EVERY))
        left = _queued(outbox.counts(), names)
    seconds = time.time() - started
    if as_json:
        print(json.dumps(_report_json(report, bound.stopped_by, left, seconds), indent=2))
    else:
        common.console.print(str(report), highlight=False, soft_wrap=True)
        if bound.stopped_by is not None:
            common.console.print(f"stopped by --{bound.stopped_by} after {seconds:.1f}s; "
                                 f"{left} still queued", highlight=False)
    if report.dead:
        raise SystemExit(EXIT_DEAD)


def _queued(counts: dict[str, DestinationCounts], names: list[str]) -> int:
    """Rows of `names` waiting in the queue (due now or retried later)."""
    return sum(counts[n].queued for n in names if n in counts)


def _report_json(report: DeliveryReport, stopped_by: str | None, left: int,
                 seconds: float) -> dict[str, Any]:
    """`crossdock deliver --once --json`: the totals, why the run stopped early (null: it
    drained what was due), what is still queued, and each destination's report."""
    return {"delivered": report.delivered, "retried": report.retried, "dead": report.dead,
            "requests": report.requests, "stopped_by": stopped_by, "still_queued": left,
            "seconds": round(seconds, 3),
            "destinations": {name: dataclasses.asdict(r)
                             for name, r in sorted(report.destinations.items())}}
