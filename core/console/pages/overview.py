"""Overview: every destination's queue, delivery lag and last error."""

from __future__ import annotations

from starlette.responses import Response

from crossdock.console.app import PageContext, PageRegistry


def register(pages: PageRegistry) -> None:
    pages.nav("overview", "Overview", "/")
    pages.get("/", overview)


def overview(ctx: PageContext) -> Response:
    counts = ctx.state.outbox.counts()
    loaded = ctx.state.loaded
    names = [d.name for d in loaded.destinations]
    names += sorted(set(counts) - set(names))
    return ctx.render("overview.html", rows=[(name, counts.get(name)) for name in names])
