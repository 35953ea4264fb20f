"""What an operator looks at in the outbox, as typed data: the status of every destination,
the daemons sharing the outbox, the dead letters, and the rows a replay would send again.

`crossdock status` and `crossdock dead-letters list|replay` render these; the web console
calls the same functions. Nothing here prints, exits or knows about click.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from crossdock.config import LoadedConfig
from crossdock.durations import parse_duration
from crossdock.errors import CrossdockError
from crossdock.fleet import DaemonInfo, fleet_for
from crossdock.outbox import Outbox
from crossdock.outbox.base import DeadLetter, DestinationCounts, RowQuery


class UnknownDestination(CrossdockError):
    """A destination name that is neither in the config nor in the outbox: a typo would
    otherwise list nothing, or replay nothing, as if there were nothing to see."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"no destination {name!r} in the config or its outbox "
                         f"(known: {', '.join(self.known) or 'none'})")


class MissingRows(CrossdockError):
    """Ids asked for that match no row of the state (and filters) asked for."""

    def __init__(self, ids: Sequence[int], what: str, filtered: bool) -> None:
        self.ids = list(ids)
        super().__init__(f"no {what} with id {', '.join(map(str, ids))}"
                         + (" matching the filters" if filtered else ""))


@dataclass(frozen=True)
class DestinationStatus:
    """One destination's row of `crossdock status`. `counts` is all zeros (and the circuit
    closed) for a configured destination the outbox has nothing of yet."""

    name: str
    counts: DestinationCounts
    #: whether the outbox has rows or figures of it (an idle, configured one has none)
    in_outbox: bool


@dataclass(frozen=True)
class OutboxStatus:
    #: the configured destinations in config order (enabled, then withheld), then any the
    #: outbox still has rows of that the config no longer names, by name
    destinations: list[DestinationStatus]
    #: the daemons sharing a PostgreSQL outbox (none on SQLite)
    daemons: list[DaemonInfo]


def outbox_status(loaded: LoadedConfig, outbox: Outbox) -> OutboxStatus:
    """Every destination's figures, and the daemons on the outbox."""
    counts = outbox.counts()
    daemons = fleet_for(outbox).daemons()
    configured = [d.name for d in loaded.destinations] + list(loaded.withheld)
    names = configured + sorted(set(counts) - set(configured))
    return OutboxStatus(
        [DestinationStatus(n, counts.get(n) or DestinationCounts(), n in counts)
         for n in names],
        daemons)


def known_destinations(loaded: LoadedConfig, outbox: Outbox) -> set[str]:
    """The names a destination filter may use: the config's (enabled or withheld) and any
    the outbox has rows of."""
    return ({d.name for d in loaded.destinations} | set(loaded.withheld)
            | set(outbox.counts()))


def check_destination(loaded: LoadedConfig, outbox: Outbox, name: str | None) -> None:
    """Raise UnknownDestination when `name` (None: all) names no known destination."""
    if name is None or name in loaded.withheld or any(
            d.name == name for d in loaded.destinations):
        return  # without counting the outbox: that grows with the rows waiting
    known = known_destinations(loaded, outbox)
    if name not in known:
        raise UnknownDestination(name, sorted(known))


def dead_letters(loaded: LoadedConfig, outbox: Outbox, destination: str | None = None,
                 limit: int = 50) -> list[DeadLetter]:
    """The most recent dead letters (of one destination), with their reasons and payloads."""
    check_destination(loaded, outbox, destination)
    return outbox.dead_letters(destination, limit)


def replay_rows(loaded: LoadedConfig, outbox: Outbox, query: RowQuery) -> list[DeadLetter]:
    """The rows a replay of `query` would queue again; MissingRows when an id it names is
    not among them (a mistyped id is not "nothing to replay")."""
    check_destination(loaded, outbox, query.destination)
    rows = outbox.find_rows(query)
    missing = sorted(set(query.ids or ()) - {row.id for row in rows})
    if missing:
        what = "delivered row" if query.state == "delivered" else "dead letter"
        filtered = bool(query.destination or query.reason or query.since or query.until)
        raise MissingRows(missing, what, filtered)
    return rows


def age(seconds: float) -> str:
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


def parse_when(value: str) -> float:
    """A point in time as --since/--until (and the console's filters) take it: an ISO date or
    time (UTC unless it says otherwise), or a duration meaning that long ago (2h, 7d).
    ValueError, saying both forms, otherwise."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        try:
            return time.time() - parse_duration(value)
        except (ValueError, TypeError):
            raise ValueError(
                f"{value!r} is neither an ISO date or time (2026-11-01, 2026-11-01T08:00Z) "
                "nor a duration ago (2h, 7d)") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
