"""The `crossdock` command-line tool.

Every command reads the config given by --config (default ./crossdock.yaml, or
$CROSSDOCK_CONFIG). Exit codes: 0 success, 1 the command found problems (invalid config, bad
input lines), 2 usage errors (click's own), 3 `deliver --once` saw messages go dead
(EXIT_DEAD).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from crossdock import __version__
from crossdock.config import LoadedConfig, load_config
from crossdock.errors import ConfigError, CrossdockError
from crossdock.json_shape import loads
from crossdock.logs import LOG_FORMATS, configure_logging
from crossdock.outbox.base import DestinationCounts

if TYPE_CHECKING:
    from crossdock.delivery import DeliveryReport

#: how wide piped output may be (tables only take the room their cells need)
PIPED_WIDTH = 240


def _console(*, stderr: bool = False) -> Console:
    """A console for the commands' output. On a terminal rich uses the terminal's width;
    piped (a log, grep, CI) it assumes 80 columns and cuts table cells short ("destina…",
    "slack-o…") and wraps long lines, so it gets room unless COLUMNS says how much."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not getattr(stream, "isatty", lambda: False)() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


console = _console()
err_console = _console(stderr=True)

SEND_CHUNK = 500


def load_or_exit(config_path: str, *, read_only: bool = False) -> LoadedConfig:
    """The config, or exit 1 after printing every problem by its path. `read_only` for the
    commands that send nothing: a destination whose secret is unset is left out (a warning),
    not an error (crossdock.config.parse_config)."""
    try:
        loaded = load_config(config_path, read_only=read_only)
    except ConfigError as exc:
        err_console.print(f"[red]{config_path}: invalid config[/red]", soft_wrap=True)
        for problem in exc.problems:
            # soft_wrap: one problem per line even when piped (rich wraps at 80 columns).
            err_console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(1) from exc
    for warning in loaded.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    return loaded


config_option = click.option(
    "-c", "--config", "config_path", default="crossdock.yaml", envvar="CROSSDOCK_CONFIG",
    show_default=True, help="Path of crossdock.yaml.",
)


class CrossdockGroup(click.Group):
    """The command group: an error Crossdock raises on purpose (an outbox it cannot open, such
    as a PostgreSQL server that is down) ends any command with its message on one line and
    exit code 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrossdockError as exc:
            raise click.ClickException(" ".join(str(exc).split())) from exc

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """`-v` and `--log-format` are the group's options, yet operators add them at the end
        of the line they just ran (`crossdock run -v`); click would refuse them there. Before
        a `--`, they are taken to the front wherever they stand."""
        if ctx.parent is None:
            end = args.index("--") if "--" in args else len(args)
            front: list[str] = []
            rest: list[str] = []
            words = iter(args[:end])
            for arg in words:
                if _is_verbose(arg) or arg.startswith("--log-format="):
                    front.append(arg)
                elif arg == "--log-format":
                    front += [arg, next(words, "")]
                else:
                    rest.append(arg)
            args = [*front, *rest, *args[end:]]
        return super().parse_args(ctx, args)


def _is_verbose(arg: str) -> bool:
    return arg == "--verbose" or (len(arg) > 1 and arg.startswith("-") and set(arg[1:]) == {"v"})


@click.group(cls=CrossdockGroup)
@click.version_option(__version__, prog_name="crossdock")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text",
              envvar="CROSSDOCK_LOG_FORMAT", show_default=True,
              help="json: one object per line (time, level, destination, message_id, "
                   "attempt, outcome).")
def cli(verbose: int, log_format: str) -> None:
    """Crossdock: receive customer data once, forward it to every destination."""
    configure_logging(verbose, log_format)
    _warn_of_plugin_failures(verbose)


def _warn_of_plugin_failures(verbose: int) -> None:
    """A plugin that failed to import is a warning for every command (an error only for the
    destinations that need it, from the config loader), with its traceback under -v."""
    from crossdock.plugin_manager import load_failures

    for failure in load_failures():
        hint = "" if verbose else " (-v shows the traceback)"
        err_console.print("[yellow]warning:[/yellow] " + escape(
            f"{failure.describe()}; destinations using it will not load{hint}"),
            highlight=False, soft_wrap=True)
        if verbose:
            err_console.print(failure.traceback.rstrip(), highlight=False, markup=False,
                              soft_wrap=True)


@cli.command()
@config_option
def validate(config_path: str) -> None:
    """Check the config and every destination's settings; exit 1 listing the problems."""
    loaded = load_or_exit(config_path)
    names = ", ".join(d.name for d in loaded.destinations) or "none"
    console.print(f"[green]ok[/green]: {config_path} ({len(loaded.destinations)} enabled "
                  f"destinations: {names})", highlight=False)


def _read_lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


@cli.command()
@config_option
@click.argument("file", type=click.File("r"))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def send(config_path: str, file: IO[str], quiet: bool) -> None:
    """Put the messages of FILE (JSON lines, - for stdin) into the outbox.

    Bad lines are reported by line number; the good lines are kept. Exit 1 if any line was bad.
    """
    from crossdock.pipeline import build_pipeline

    loaded = load_or_exit(config_path)
    pipeline = build_pipeline(loaded)
    bad: list[tuple[int, list[str]]] = []
    accepted = duplicates = rows = 0
    total = None
    if file is not sys.stdin and file.name not in ("<stdin>", "-"):
        with open(file.name, "rb") as counter:
            total = sum(1 for line in counter if line.strip())
    progress = Progress(TextColumn("sending"), BarColumn(), TextColumn("{task.completed}"),
                        TimeRemainingColumn(), console=err_console, disable=quiet)
    try:
        with progress:
            task = progress.add_task("send", total=total)
            chunk: list[tuple[int, str]] = []
            for item in _read_lines(file):
                chunk.append(item)
                if len(chunk) >= SEND_CHUNK:
                    a, d, r = _send_chunk(pipeline, chunk, bad)
                    accepted, duplicates, rows = accepted + a, duplicates + d, rows + r
                    progress.advance(task, len(chunk))
                    chunk = []
            if chunk:
                a, d, r = _send_chunk(pipeline, chunk, bad)
                accepted, duplicates, rows = accepted + a, duplicates + d, rows + r
                progress.advance(task, len(chunk))
    finally:
        pipeline.close()
    for number, problems in bad:
        err_console.print(f"line {number}: " + "; ".join(problems), markup=False,
                          highlight=False, soft_wrap=True)
    console.print(f"accepted {accepted} messages ({rows} outbox rows), {duplicates} duplicates, "
                  f"{len(bad)} bad lines", highlight=False)
    if bad:
        raise SystemExit(1)


def _send_chunk(pipeline: Any, chunk: list[tuple[int, str]],
                bad: list[tuple[int, list[str]]]) -> tuple[int, int, int]:
    raws: list[Any] = []
    numbers: list[int] = []
    for number, line in chunk:
        try:
            # Without its newline, or an unclosed line's error lands on a "line 2, column 1".
            raws.append(loads(line.rstrip("\r\n")))
            numbers.append(number)
        except json.JSONDecodeError as exc:
            bad.append((number, [f"not valid JSON ({exc.msg} at column {exc.colno})"]))
    result = pipeline.accept(raws)
    for index, problems in result.errors:
        bad.append((numbers[index], problems))
    bad.sort()
    return len(result.accepted), len(result.duplicates), result.rows


@cli.command()
@config_option
def run(config_path: str) -> None:
    """Run the forwarding daemon (collector, delivery workers, timers) until stopped."""
    from crossdock.collector import make_app
    from crossdock.daemon import run_daemon
    from crossdock.metrics import Metrics

    loaded = load_or_exit(config_path)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("crossdock").setLevel(logging.INFO)
    # One set of request counters: the collector counts, the ops listener's /metrics shows.
    counters = Metrics()
    asyncio.run(run_daemon(loaded, collector_app_factory=lambda p: make_app(loaded, p,
                                                                             counters=counters),
                           config_path=config_path, collector_metrics=counters))


#: `crossdock deliver --once` exit code when messages went dead during the run (cron mails it)
EXIT_DEAD = 3
#: seconds between `crossdock deliver --once` progress lines on stderr
PROGRESS_EVERY = 5.0


@cli.command()
@config_option
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
    from crossdock.outbox import open_outbox

    loaded = load_or_exit(config_path)
    known = [d.name for d in loaded.destinations]
    unknown = [name for name in destinations if name not in known]
    if unknown:
        raise click.BadParameter(
            f"no enabled destination {', '.join(map(repr, unknown))} (enabled: "
            f"{', '.join(known) or 'none'})", param_hint="'-d' / '--destination'")
    started = time.time()
    bound = DrainBound(deadline=None if max_time is None else started + max_time, limit=limit)
    outbox = open_outbox(loaded.outbox_url)
    try:
        counts = outbox.counts()
        names = list(destinations) or known
        waiting = _queued(counts, names)

        def progress(report: DeliveryReport) -> None:
            settled = report.delivered + report.retried + report.dead
            err_console.print(
                f"deliver: {settled} of {waiting} queued settled (delivered "
                f"{report.delivered}, retry later {report.retried}, dead {report.dead}), "
                f"{time.time() - started:.0f}s", highlight=False, soft_wrap=True)

        report = asyncio.run(deliver_once(
            loaded, outbox, bound=bound, destinations=destinations or None,
            progress=None if quiet else progress,
            progress_every=PROGRESS_EVERY))
        left = _queued(outbox.counts(), names)
    finally:
        outbox.close()
    seconds = time.time() - started
    if as_json:
        print(json.dumps(_report_json(report, bound.stopped_by, left, seconds), indent=2))
    else:
        console.print(str(report), highlight=False, soft_wrap=True)
        if bound.stopped_by is not None:
            console.print(f"stopped by --{bound.stopped_by} after {seconds:.1f}s; {left} "
                          "still queued", highlight=False)
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


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: str, as_json: bool) -> None:
    """Per destination: queued, leased, delivered, retrying, dead, how long the oldest
    waiting message has waited, the circuit (closed, or open with the next probe), and the
    last error."""
    from crossdock.fleet import fleet_for
    from crossdock.outbox import open_outbox

    loaded = load_or_exit(config_path, read_only=True)
    outbox = open_outbox(loaded.outbox_url)
    try:
        counts = outbox.counts()
        daemons = fleet_for(outbox).daemons()
    finally:
        outbox.close()
    configured = [d.name for d in loaded.destinations] + list(loaded.withheld)
    names = configured + sorted(set(counts) - set(configured))
    if as_json:
        from dataclasses import asdict

        # Every configured destination, zeros included: a script reading this must see an
        # idle destination as idle, not as missing (as the table shows it).
        click.echo(json.dumps({n: asdict(counts.get(n) or DestinationCounts()) for n in names},
                              indent=2))
        return
    table = Table("destination", "queued", "leased", "retrying", "delivered", "dead",
                  "dropped attrs", "oldest waiting", "circuit", "last error")
    now = time.time()
    for name in names:
        c = counts.get(name)
        if c is None:
            table.add_row(name, "0", "0", "0", "0", "0", "0", "", "closed", "")
            continue
        waiting = "" if c.oldest_waiting_at is None else _age(now - c.oldest_waiting_at)
        error = (c.last_error or "")[:80]
        if c.last_error and c.last_error_at is not None:
            # The last error stays after later deliveries: its age says whether it is news.
            error = f"{_age(now - c.last_error_at)} ago: {error}"
        table.add_row(name, str(c.queued), str(c.leased), str(c.retrying), str(c.delivered),
                      str(c.dead), str(c.dropped_attributes), waiting, _circuit(c, now), error)
    console.print(table)
    if daemons:
        _print_daemons(daemons)


def _circuit(counts: DestinationCounts, now: float) -> str:
    """A destination's circuit for the status table: closed, or since when it is open and
    when the next probe goes (docs/delivery.md)."""
    if counts.circuit == "closed" or counts.circuit_opened_at is None:
        return counts.circuit
    text = f"{counts.circuit} {_age(now - counts.circuit_opened_at)}"
    if counts.circuit == "open" and counts.circuit_next_probe_at is not None:
        text += f", probe in {_age(counts.circuit_next_probe_at - now)}"
    return text


def _age(seconds: float) -> str:
    """A duration the way an operator reads a lag: 42s, 7m 05s, 3h 12m, 2d 04h."""
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _print_daemons(daemons: list[Any]) -> None:
    """The daemons sharing a PostgreSQL outbox (crossdock.fleet), and the rows each holds."""
    table = Table("daemon", "state", "version", "started", "last heartbeat", "leased rows",
                  "destinations", title="daemons on this outbox")
    now = time.time()
    for d in daemons:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.started_at))
        table.add_row(d.owner, d.state, d.version, started, f"{now - d.heartbeat_at:.0f}s ago",
                      str(d.leased), ", ".join(d.destinations))
    console.print(table)


@cli.group("dead-letters")
def dead_letters() -> None:
    """Inspect and replay messages that could not be delivered."""


@dead_letters.command("list")
@config_option
@click.option("-d", "--destination", help="Only this destination.")
@click.option("-n", "--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dead_letters_list(config_path: str, destination: str | None, limit: int,
                      as_json: bool) -> None:
    """List dead letters with their reasons."""
    from crossdock.outbox import open_outbox

    loaded = load_or_exit(config_path, read_only=True)
    outbox = open_outbox(loaded.outbox_url)
    try:
        _check_destination(loaded, outbox, destination)
        letters = outbox.dead_letters(destination, limit)
    finally:
        outbox.close()
    if as_json:
        from dataclasses import asdict
        click.echo(json.dumps([asdict(letter) for letter in letters], indent=2, default=str))
        return
    table = Table("id", "destination", "message", "attempts", "failed at", "reason")
    for letter in letters:
        failed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.failed_at))
        table.add_row(str(letter.id), letter.destination, letter.message_id,
                      str(letter.attempts), failed, letter.reason)
    console.print(table)


def _check_destination(loaded: LoadedConfig, outbox: Any, name: str | None) -> None:
    """Refuse a -d that names no destination of the config or the outbox: a typo would
    otherwise list nothing, or replay 0 dead letters, as if there were none."""
    if name is None:
        return
    known = {d.name for d in loaded.destinations} | set(loaded.withheld) | set(outbox.counts())
    if name not in known:
        raise click.BadParameter(
            f"no destination {name!r} in the config or its outbox "
            f"(known: {', '.join(sorted(known)) or 'none'})", param_hint="-d/--destination")


def _when(value: str | None, param: str) -> float | None:
    """--since/--until: an ISO date or time (UTC unless it says otherwise), or a duration
    meaning that long ago (2h, 7d)."""
    if value is None:
        return None
    from datetime import UTC, datetime

    from crossdock.config import parse_duration

    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        try:
            return time.time() - parse_duration(value)
        except (ValueError, TypeError):
            raise click.BadParameter(
                f"{value!r} is neither an ISO date or time (2026-11-01, 2026-11-01T08:00Z) "
                "nor a duration ago (2h, 7d)", param_hint=param) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


@dead_letters.command("replay")
@config_option
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
    from crossdock.outbox import open_outbox
    from crossdock.outbox.base import RowQuery
    from crossdock.replay import plan_replay, requeue

    if delivered and destination is None:
        raise click.UsageError("--delivered re-delivers to one destination: give -d NAME")
    query = RowQuery("delivered" if delivered else "dead", destination, list(ids) or None,
                     reason, _when(since, "--since"), _when(until, "--until"))
    everything = not (ids or destination or reason or since or until)
    loaded = load_or_exit(config_path)
    outbox = open_outbox(loaded.outbox_url)
    try:
        _check_destination(loaded, outbox, destination)
        rows = outbox.find_rows(query)
        what = "delivered row" if delivered else "dead letter"
        missing = sorted(set(ids) - {row.id for row in rows})
        if missing:
            # A mistyped id is not "nothing to replay": say which.
            raise click.ClickException(
                f"no {what} with id {', '.join(map(str, missing))}"
                + (" matching the filters" if destination or reason or since or until
                   else ""))
        plans = plan_replay(loaded, outbox, rows, as_stored=as_stored)
        if everything and rows and not dry_run and not yes:
            click.confirm(f"replay all {len(rows)} dead letters?", abort=True,
                          err=True)
        count = 0 if dry_run else requeue(outbox, query.state, plans)
    finally:
        outbox.close()
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "replayed": count,
                               "rows": [p.to_json() for p in plans]}, indent=2, default=str))
        return
    if dry_run:
        for plan in plans:
            console.print(f"{plan.row.id} {plan.row.destination} {plan.row.message_id}: "
                          f"{plan.how}", highlight=False, markup=False)
            if plan.payload is not None:
                console.print("  " + json.dumps(plan.payload, default=str), highlight=False,
                              markup=False, soft_wrap=True)
        console.print(f"would replay {sum(p.queued for p in plans)} of {len(plans)} "
                      f"{what}s (dry run: nothing changed)", highlight=False)
        return
    for plan in plans:
        if not plan.queued:
            err_console.print(f"{plan.row.id} {plan.row.destination} {plan.row.message_id}: "
                              f"{plan.how}{': ' + plan.detail if plan.detail else ''}",
                              highlight=False, markup=False, soft_wrap=True)
    hows: dict[str, int] = {}
    for plan in plans:
        if plan.queued:
            hows[plan.how] = hows.get(plan.how, 0) + 1
    detail = ", ".join(f"{n} {how}" for how, n in hows.items())
    console.print(f"replayed {count} {what}s" + (f" ({detail})" if detail else ""),
                  highlight=False)


@cli.command()
@config_option
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
    from crossdock.outbox import open_outbox
    from crossdock.replay import BackfillReport, run_backfill

    start = _when(since, "--since")
    end = _when(until, "--until")
    assert start is not None
    loaded = load_or_exit(config_path)
    if destination not in {d.name for d in loaded.destinations}:
        raise click.BadParameter(
            f"no enabled destination {destination!r} in the config (known: "
            f"{', '.join(sorted(d.name for d in loaded.destinations)) or 'none'})",
            param_hint="-d/--destination")
    keep = loaded.config.outbox.keep_messages
    if start < time.time() - keep:
        err_console.print(
            "[yellow]warning:[/yellow] messages are kept for outbox.keep_messages "
            f"({_age(keep)}): those accepted before then are no longer there to backfill",
            highlight=False)

    def progress(report: BackfillReport) -> None:
        if not quiet:
            err_console.print(
                f"backfill {destination}: {report.read} messages read, {report.queued} "
                f"queued, {report.already} already there, {report.filtered} filtered out",
                highlight=False, markup=False)

    outbox = open_outbox(loaded.outbox_url)
    try:
        report = run_backfill(loaded, outbox, destination, start, end, progress=progress)
    finally:
        outbox.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        resumed = (f" (resumed after kept message {report.resumed_after})"
                   if report.resumed_after else "")
        console.print(
            f"backfill {destination}: {report.queued} rows queued, {report.already} already "
            f"there, {report.filtered} filtered out, {len(report.unshaped)} not shaped, of "
            f"{report.read} kept messages{resumed}", highlight=False)
    for message_id, problems in report.unshaped:
        err_console.print(f"{message_id}: {problems}", highlight=False, markup=False,
                          soft_wrap=True)


@cli.command()
@click.option("--messages", default=20, show_default=True, help="Sample messages to send.")
@click.option("--keep", type=click.Path(path_type=Path), help="Keep the demo folder here.")
def demo(messages: int, keep: Path | None) -> None:
    """Start local fakes of the destinations, forward sample messages, show what arrived."""
    from crossdock.demo import run_demo

    run_demo(console, messages=messages, keep=keep)


def _attach_commands() -> None:
    from crossdock.plugins_cli import plugins_group
    from crossdock.profiles_cli import profiles_group
    from crossdock.route_cli import route_command

    cli.add_command(plugins_group)
    cli.add_command(route_command)
    cli.add_command(profiles_group)
    from crossdock.audiences.cli import audiences_group

    cli.add_command(audiences_group)
    from crossdock.functions.cli import functions_group

    cli.add_command(functions_group)
    from crossdock.snapshots.cli import exports_group

    cli.add_command(exports_group)
    from crossdock.db_cli import db_group

    cli.add_command(db_group)


def _attach_plugin_commands() -> None:
    from crossdock.plugin_manager import plugin_manager

    try:
        plugin_manager().hook.register_commands(cli=cli)
    except CrossdockError as exc:
        err_console.print(f"[red]{exc}[/red]")


def main() -> None:
    _attach_commands()
    _attach_plugin_commands()
    cli()


if __name__ == "__main__":  # `python -m crossdock.cli`
    main()
