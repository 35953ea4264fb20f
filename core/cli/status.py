"""`crossdock status`: every destination's figures and the daemons on the outbox, as
crossdock.views.outbox_status reads them."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click
from rich.table import Table

from crossdock.cli import common
from crossdock.fleet import DaemonInfo
from crossdock.outbox.base import DestinationCounts
from crossdock.views import age, outbox_status


@click.command()
@common.config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: str, as_json: bool) -> None:
    """Per destination: queued, leased, delivered, retrying, dead, how long the oldest
    waiting message has waited, the circuit (closed, or open with the next probe), and the
    last error."""
    with common.opened(config_path, read_only=True) as (loaded, outbox):
        found = outbox_status(loaded, outbox)
    if as_json:
        # Every configured destination, zeros included: a script reading this must see an
        # idle destination as idle, not as missing (as the table shows it).
        click.echo(json.dumps({d.name: asdict(d.counts) for d in found.destinations},
                              indent=2))
        return
    table = Table("destination", "queued", "leased", "retrying", "delivered", "dead",
                  "dropped attrs", "oldest waiting", "circuit", "last error")
    now = time.time()
    for d in found.destinations:
        c = d.counts
        if not d.in_outbox:
            table.add_row(d.name, "0", "0", "0", "0", "0", "0", "", "closed", "")
            continue
        waiting = "" if c.oldest_waiting_at is None else age(now - c.oldest_waiting_at)
        error = (c.last_error or "")[:80]
        if c.last_error and c.last_error_at is not None:
            # The last error stays after later deliveries: its age says whether it is news.
            error = f"{age(now - c.last_error_at)} ago: {error}"
        table.add_row(d.name, str(c.queued), str(c.leased), str(c.retrying), str(c.delivered),
                      str(c.dead), str(c.dropped_attributes), waiting, _circuit(c, now), error)
    common.console.print(table)
    if found.daemons:
        _print_daemons(found.daemons)


def _circuit(counts: DestinationCounts, now: float) -> str:
    """A destination's circuit for the status table: closed, or since when it is open and
    when the next probe goes (docs/delivery.md); first, who paused its delivery."""
    if counts.paused_by is not None and counts.paused_at is not None:
        return f"paused by {counts.paused_by} {age(now - counts.paused_at)} ago"
    if counts.circuit == "closed" or counts.circuit_opened_at is None:
        return counts.circuit
    text = f"{counts.circuit} {age(now - counts.circuit_opened_at)}"
    if counts.circuit == "open" and counts.circuit_next_probe_at is not None:
        text += f", probe in {age(counts.circuit_next_probe_at - now)}"
    return text


def _print_daemons(daemons: list[DaemonInfo]) -> None:
    """The daemons sharing a PostgreSQL outbox (crossdock.fleet), and the rows each holds."""
    table = Table("daemon", "state", "version", "started", "last heartbeat", "leased rows",
                  "destinations", title="daemons on this outbox")
    now = time.time()
    for d in daemons:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.started_at))
        table.add_row(d.owner, d.state, d.version, started, f"{now - d.heartbeat_at:.0f}s ago",
                      str(d.leased), ", ".join(d.destinations))
    common.console.print(table)
