"""Mapping tester: paste a message (or pick a recent one) and see, for each destination, the
filter's decision, the routed payload and the planned requests, secrets redacted; nothing is
sent or stored. The same function as `crossdock route` (crossdock.route.preview). A GET, so
read-only users may use it too and a result can be linked to."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from crossdock.console.app import PageContext, PageError, PageRegistry
from crossdock.console.reads import recent_kept
from crossdock.errors import MessageError
from crossdock.route.preview import RoutePreview, preview_route

#: recent messages offered to pick from
PICKS = 20

EXAMPLE = {"type": "track", "event": "Order Completed", "userId": "user-42",
           "properties": {"order_id": "o-1001", "revenue": 49.9, "currency": "EUR"},
           "context": {"traits": {"email": "ada@example.com"}}}


def register(pages: PageRegistry) -> None:
    pages.nav("tester", "Mapping tester", "/tester")
    pages.get("/tester", tester)


def tester(ctx: PageContext) -> Response:
    state = ctx.state
    names = [d.name for d in state.loaded.destinations]
    chosen = ctx.request.query_params.getlist("destination")
    text = ctx.query("message")
    picked = ctx.query("pick")
    recent = recent_kept(state.outbox, PICKS)
    problem = ""
    previews: list[RoutePreview] = []
    try:
        unknown = [name for name in chosen if name not in names]
        if unknown:
            raise PageError(f"destination: no enabled destination {', '.join(map(repr, unknown))}"
                            f" (enabled: {', '.join(names) or 'none'})")
        if picked:
            kept = state.outbox.kept([picked]).get(picked)
            if kept is None:
                raise PageError(f"pick: message {picked!r} is not kept (any more)")
            text = json.dumps(kept.enriched.get("message", {}), indent=2, ensure_ascii=False)
        if text:
            previews = preview_route(state.loaded, _parsed(text), chosen or None)
    except PageError as exc:
        problem = exc.message
    except MessageError as exc:  # the message is not one the collector would take
        problem = "; ".join(f"message: {p}" for p in exc.problems)
    return ctx.render("tester.html", 400 if problem else 200, names=names, chosen=chosen,
                      message=text or json.dumps(EXAMPLE, indent=2), tried=bool(text),
                      previews=previews, problem=problem, recent=recent)


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PageError(f"message: not valid JSON ({exc})") from None
