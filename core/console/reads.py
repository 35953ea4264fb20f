"""What the console reads that the CLI has no command for: messages accepted per minute (from
the kept messages, through their accepted_at index) and the collector's counters. The rest
the pages read through the CLI's own functions."""

from __future__ import annotations

import time
from dataclasses import dataclass

from crossdock.console.format import spark_points
from crossdock.metrics import Metrics
from crossdock.outbox.base import KeptMessage, Outbox

MINUTES = 60


@dataclass(frozen=True, slots=True)
class PerMinute:
    """Messages accepted in each of the last MINUTES minutes, oldest first; the last is the
    minute in progress."""

    counts: list[int]
    ends_at: float

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def peak(self) -> int:
        return max(self.counts, default=0)

    def points(self, width: int = 240, height: int = 36) -> str:
        """The counts as an SVG polyline's points, scaled to width x height."""
        return spark_points(self.counts, width, height)


def accepted_per_minute(outbox: Outbox, now: float | None = None) -> PerMinute:
    """Messages accepted per minute over the last hour, counted from the kept messages
    (outbox.keep_messages: with keeping off, every minute is 0)."""
    now = time.time() if now is None else now
    this_minute = int(now // 60)
    first = this_minute - MINUTES + 1
    with outbox.transaction() as tx:
        rows = tx.execute(
            "SELECT CAST(FLOOR(accepted_at / 60) AS BIGINT) AS minute, COUNT(*) "
            "FROM outbox_messages WHERE accepted_at >= ? GROUP BY minute",
            [first * 60.0]).fetchall()
    by_minute = {int(minute): int(count) for minute, count in rows}
    return PerMinute([by_minute.get(first + i, 0) for i in range(MINUTES)],
                     (this_minute + 1) * 60.0)


@dataclass(frozen=True, slots=True)
class CollectorCounts:
    """The collector's counters since this daemon started."""

    accepted: int
    duplicates: int
    bad: int
    refused: int


def collector_counts(metrics: Metrics) -> CollectorCounts:
    """Accepted, duplicate and bad messages, and requests refused (wrong key, rate limit)."""
    messages = "crossdock_collector_messages_total"
    return CollectorCounts(
        int(metrics.value(messages, outcome="accepted")),
        int(metrics.value(messages, outcome="duplicate")),
        int(metrics.value(messages, outcome="bad")),
        int(metrics.value("crossdock_collector_auth_failures_total")
            + metrics.value("crossdock_collector_rate_limited_total")))


def recent_kept(outbox: Outbox, limit: int) -> list[KeptMessage]:
    """The most recently kept messages, newest first."""
    last = last_kept_seq(outbox)
    if not last:
        return []
    return outbox.kept_between(0, None, max(0, last - limit), limit)[::-1]


def last_kept_seq(outbox: Outbox) -> int:
    """The seq of the newest kept message (0: none)."""
    with outbox.transaction() as tx:
        row = tx.execute("SELECT MAX(seq) FROM outbox_messages").fetchone()
    return int(row[0] or 0)
