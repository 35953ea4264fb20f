"""Audiences: every audience with its condition, destinations, schedule, size and last sync;
one audience with a preview of who would enter and leave if it synced now, and "sync now"
(admin). Through crossdock.audiences.report and .sync, as `crossdock audiences list`,
`preview` and `sync`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import Response

from crossdock.audiences import report
from crossdock.audiences.spec import audiences_of
from crossdock.audiences.sync import select, sync
from crossdock.console.app import PageContext, PageError, PageRegistry, whole_number
from crossdock.console.pages.people import pipeline_of

#: people listed per side of a preview (the counts are always whole)
PREVIEW_LIMIT = 50


def register(pages: PageRegistry) -> None:
    pages.nav("audiences", "Audiences", "/audiences")
    pages.get("/audiences", audiences)
    pages.get("/audiences/{name}", audience)
    pages.get("/audiences/{name}/preview", preview)
    pages.post("/audiences/{name}/sync", sync_now)


def audiences(ctx: PageContext) -> Response:
    return ctx.render("audiences.html", rows=report.overview(pipeline_of(ctx)))


def _one(ctx: PageContext, name: str) -> dict[str, Any]:
    try:
        return report.overview(pipeline_of(ctx), [name])[0]
    except KeyError as exc:
        raise PageError(f"audience: {exc.args[0]}", 404) from exc


def _int(ctx: PageContext, name: str) -> int | None:
    value = ctx.query(name)
    return whole_number(name, value) if value else None


def audience(ctx: PageContext) -> Response:
    name = ctx.request.path_params["name"]
    row = _one(ctx, name)
    return ctx.render("audience.html", row=row, found=None, limit=PREVIEW_LIMIT,
                      entered=_int(ctx, "entered"), exited=_int(ctx, "exited"))


def preview(ctx: PageContext) -> Response:
    """Who would enter and leave: the part htmx swaps in, or the audience page with it."""
    name = ctx.request.path_params["name"]
    row = _one(ctx, name)
    found = report.preview(pipeline_of(ctx), name)
    template = "audience_preview.html" if ctx.htmx else "audience.html"
    return ctx.render(template, row=row, found=found, limit=PREVIEW_LIMIT,
                      entered=None, exited=None)


def sync_now(ctx: PageContext) -> Response:
    name = ctx.request.path_params["name"]
    pipeline = pipeline_of(ctx)
    try:
        chosen = select(audiences_of(pipeline.loaded.config), [name])
    except KeyError as exc:
        raise PageError(f"audience: {exc.args[0]}", 404) from exc
    done = sync(pipeline, audiences=chosen)
    entered, exited = done.entered.get(name, 0), done.exited.get(name, 0)
    ctx.note(f"synced audience {name}: {entered} entered, {exited} left, "
             f"{done.rows} outbox rows")
    return ctx.redirect(f"/audiences/{quote(name, safe='')}?"
                        + urlencode({"entered": entered, "exited": exited}))
