"""Data dictionary and data health: every event name, event property and user attribute
seen, its types, first and last seen, datapoints per day (a sparkline, inline SVG) and the
datapoints the attribute rules rejected, by rule. Through
crossdock.profiles.dictionary.read_dictionary, as `crossdock profiles dictionary`."""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.responses import Response

from crossdock.console.app import PageContext, PageError, PageRegistry, whole_number
from crossdock.outbox.base import is_sqlite_handle, shared_sql
from crossdock.profiles.dictionary import (
    KINDS,
    RULE_LABELS,
    Dictionary,
    day_range,
    read_dictionary,
)

#: the days a sparkline covers unless the page asks for others
DEFAULT_DAYS = 14
MAX_DAYS = 366
SPARK_WIDTH = 120
SPARK_HEIGHT = 24


def register(pages: PageRegistry) -> None:
    pages.nav("dictionary", "Data dictionary", "/dictionary")
    pages.get("/dictionary", dictionary)


@dataclass(frozen=True, slots=True)
class Spark:
    """A sparkline's polyline points in a SPARK_WIDTH x SPARK_HEIGHT box, and its title."""

    points: str
    title: str


def sparkline(days: list[str], counts: list[int]) -> Spark:
    """Points of `counts` (one per day, oldest first), scaled to the box: the highest day
    touches the top, zero lies on the bottom (a line with one day is a flat dash)."""
    top = max(counts, default=0) or 1
    step = SPARK_WIDTH / max(len(counts) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - 1 - (SPARK_HEIGHT - 2) * n / top:.1f}"
        for i, n in enumerate(counts))
    if len(counts) == 1:
        points += f" {SPARK_WIDTH:.1f},{points.split(',')[1]}"
    busiest = max(range(len(counts)), key=lambda i: counts[i]) if counts else 0
    title = (f"{sum(counts)} datapoints over {len(counts)} days; busiest {days[busiest]} "
             f"({counts[busiest]})") if counts else "no days"
    return Spark(points, title)


#: what read_dictionary reads (profiles_m003_dictionary)
DICTIONARY_TABLES = ("profile_dictionary", "profile_dictionary_rejections")


def _days(ctx: PageContext) -> int:
    return whole_number("days", ctx.query("days", str(DEFAULT_DAYS)), 1, MAX_DAYS)


def dictionary(ctx: PageContext) -> Response:
    days = _days(ctx)
    kind = ctx.query("kind") or None
    if kind is not None and kind not in KINDS:
        raise PageError(f"kind: one of {', '.join(KINDS)}, got {kind!r}")
    with ctx.state.outbox.transaction() as tx:
        db = shared_sql(tx)
        # A page only reads: on SQLite the tables exist once a profile store opened this
        # outbox (PostgreSQL's are outbox migrations); before that the dictionary is empty.
        if is_sqlite_handle(db) and not all(db[t].exists() for t in DICTIONARY_TABLES):
            found = Dictionary(day_range(days, time.time()), [], [])
        else:
            found = read_dictionary(db, days=days, kind=kind)
    sparks = {(e.kind, e.name): sparkline(found.days, e.per_day) for e in found.entries}
    rejection_sparks = {(r.name, r.rule): sparkline(found.days, r.per_day)
                        for r in found.rejections}
    return ctx.render("dictionary.html", found=found, days=days, kind=kind or "",
                      kinds=KINDS, sparks=sparks, rejection_sparks=rejection_sparks,
                      labels=RULE_LABELS, width=SPARK_WIDTH, height=SPARK_HEIGHT,
                      by_rule=found.by_rule())
