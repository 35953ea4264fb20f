"""Overview: every destination's queue, delivery lag, last error, pause and circuit; messages
accepted per minute over the last hour; the collector's counts; the daemons of the fleet.
Refreshed in place every few seconds by htmx (a plain reload without JavaScript)."""

from __future__ import annotations

import math
import time

from starlette.responses import Response

from crossdock.console.app import PageContext, PageRegistry
from crossdock.console.reads import accepted_per_minute, collector_counts
from crossdock.views import outbox_status

#: how often the page refreshes itself (seconds), at the least
REFRESH = 5
#: ... and at most this share of the time goes to reading it: counting a big outbox grows
#: with the rows waiting, and every open console would otherwise keep the database busy
BUSY_SHARE = 0.1


def register(pages: PageRegistry) -> None:
    pages.nav("overview", "Overview", "/")
    pages.get("/", overview)


def overview(ctx: PageContext) -> Response:
    state = ctx.state
    started = time.monotonic()
    # What `crossdock status` shows, read by the same function.
    found = outbox_status(state.loaded, state.outbox)
    minutes = accepted_per_minute(state.outbox)
    took = time.monotonic() - started
    return ctx.render(
        "overview_body.html" if ctx.htmx else "overview.html",
        destinations=found.destinations, daemons=found.daemons,
        enabled={d.name for d in state.loaded.destinations}, withheld=state.loaded.withheld,
        now=time.time(), refresh=max(REFRESH, math.ceil(took / BUSY_SHARE)), minutes=minutes,
        collector=None if state.collector is None else collector_counts(state.collector),
        dialect=state.outbox.dialect)
