"""Overview: every destination's queue, delivery lag, last error, pause and circuit; messages
accepted per minute over the last hour; the collector's counts; the daemons of the fleet.
Refreshed in place every few seconds by htmx (a plain reload without JavaScript).

The counts come from the console's background snapshot (crossdock.console.snapshot), shown
with its age: counting a big outbox takes longer than a page may."""

from __future__ import annotations

import math
import time

from starlette.responses import Response

from crossdock.console.app import PageContext, PageRegistry
from crossdock.console.reads import collector_counts


def register(pages: PageRegistry) -> None:
    pages.nav("overview", "Overview", "/")
    pages.get("/", overview)


def overview(ctx: PageContext) -> Response:
    state = ctx.state
    reading = state.counts.get()
    found = reading.snapshot
    return ctx.render(
        "overview_body.html" if ctx.htmx else "overview.html",
        reading=reading, destinations=found.status.destinations if found else [],
        daemons=found.status.daemons if found else [],
        enabled={d.name for d in state.loaded.destinations}, withheld=state.loaded.withheld,
        now=time.time(), refresh=math.ceil(state.counts.interval),
        minutes=found.minutes if found else None,
        collector=None if state.collector is None else collector_counts(state.collector),
        dialect=state.outbox.dialect)
