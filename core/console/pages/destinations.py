"""Destination: its settings (secrets redacted), filter and mapping, its queue, recent
deliveries and its failures grouped by reason; pause and resume its delivery (for every
daemon on the outbox), and send it a test message."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import yaml
from starlette.responses import Response

from crossdock.console.app import PageContext, PageRegistry
from crossdock.console.snapshot import Reading
from crossdock.errors import MessageError
from crossdock.outbox.base import DestinationCounts, NewRow, RowQuery
from crossdock.redact import redacted_settings
from crossdock.route.preview import preview_route
from crossdock.views import dead_letters

#: dead letters read to group the failures by reason
FAILURES_READ = 1000
#: delivered rows shown
RECENT = 20


def register(pages: PageRegistry) -> None:
    pages.nav("destinations", "Destinations", "/destinations")
    pages.get("/destinations", destinations)
    pages.get("/destinations/{name}", destination)
    pages.post("/destinations/{name}/pause", pause)
    pages.post("/destinations/{name}/resume", resume)
    pages.post("/destinations/{name}/test", send_test)


def counts_of(ctx: PageContext) -> tuple[Reading, dict[str, DestinationCounts]]:
    """Each enabled destination's counts from the console's snapshot (crossdock.console.
    snapshot; all zeros before one was read), with whether it is paused read now: that is one
    small table, and the page's pause/resume button must match it."""
    reading = ctx.state.counts.get()
    found = ({d.name: d.counts for d in reading.snapshot.status.destinations}
             if reading.snapshot else {})
    paused = ctx.state.outbox.paused()
    counts = {}
    for configured in ctx.state.loaded.destinations:
        name = configured.name
        held = paused.get(name)
        counts[name] = replace(found.get(name) or DestinationCounts(),
                               paused_by=held.by if held else None,
                               paused_at=held.at if held else None)
    return reading, counts


def destinations(ctx: PageContext) -> Response:
    reading, found = counts_of(ctx)
    rows = [(d, found[d.name]) for d in ctx.state.loaded.destinations]
    return ctx.render("destinations.html", rows=rows, withheld=ctx.state.loaded.withheld,
                      reading=reading, refresh=math.ceil(ctx.state.counts.interval))


def test_message(name: str) -> dict[str, Any]:
    """The test message a destination page offers (editable before it is sent)."""
    return {"type": "track", "event": "Crossdock Test Message", "userId": "crossdock-test",
            "properties": {"destination": name},
            "context": {"traits": {"email": "test@example.com"}}}


def destination(ctx: PageContext, *, sent: str = "", problem: str = "",
                message: str = "") -> Response:
    name = ctx.request.path_params["name"]
    configured = ctx.state.destination(name)
    outbox = ctx.state.outbox
    reading, found = counts_of(ctx)
    counts = found[name]
    letters = dead_letters(ctx.state.loaded, outbox, name, FAILURES_READ)
    reasons: Counter[str] = Counter(ctx.state.scrub(letter.reason) for letter in letters)
    last_seen: dict[str, float] = {}
    for letter in letters:
        last_seen.setdefault(ctx.state.scrub(letter.reason), letter.failed_at)
    delivered = outbox.find_rows(RowQuery("delivered", name, since=time.time() - 3600,
                                          limit=RECENT, newest_first=True))
    settings = redacted_settings(configured.plugin.settings)
    return ctx.render(
        "destination.html", name=name, plugin=configured.plugin.plugin_name, counts=counts,
        reading=reading, refresh=math.ceil(ctx.state.counts.interval),
        settings=yaml.safe_dump(settings, sort_keys=False, allow_unicode=True),
        filter=yaml.safe_dump(configured.config.filter.model_dump(mode="json"),
                              sort_keys=False, allow_unicode=True),
        rules=yaml.safe_dump(configured.config.rules.model_dump(mode="json"),
                             sort_keys=False, allow_unicode=True),
        mapping=yaml.safe_dump(configured.mapping, sort_keys=False, allow_unicode=True),
        delivery=yaml.safe_dump(configured.config.delivery.model_dump(mode="json"),
                                sort_keys=False, allow_unicode=True),
        reasons=reasons.most_common(), last_seen=last_seen, read=len(letters),
        limit=FAILURES_READ, delivered=delivered, sent=sent, problem=problem,
        message=message or json.dumps(test_message(name), indent=2))


def pause(ctx: PageContext) -> Response:
    name = ctx.request.path_params["name"]
    ctx.state.destination(name)
    if ctx.state.outbox.pause(name, ctx.user.name):
        ctx.note(f"paused delivery to {name}")
    else:
        ctx.note(f"{name} was paused already")
    return ctx.redirect(f"/destinations/{name}")


def resume(ctx: PageContext) -> Response:
    name = ctx.request.path_params["name"]
    ctx.state.destination(name)
    if ctx.state.outbox.resume(name):
        ctx.note(f"resumed delivery to {name}")
    else:
        ctx.note(f"{name} was not paused")
    return ctx.redirect(f"/destinations/{name}")


def send_test(ctx: PageContext) -> Response:
    """Route the form's message to this destination alone (the same preview the mapping
    tester shows) and queue it: the daemons deliver it like any other row."""
    name = ctx.request.path_params["name"]
    ctx.state.destination(name)
    text = ctx.field("message")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return _refused(ctx, f"message: not valid JSON ({exc})", text)
    if not isinstance(raw, dict):
        return _refused(ctx, "message: must be a JSON object", text)
    raw.setdefault("messageId", f"console-test-{uuid.uuid4()}")
    try:
        (preview,) = preview_route(ctx.state.loaded, raw, [name])
    except MessageError as exc:
        return _refused(ctx, "; ".join(f"message: {p}" for p in exc.problems), text)
    if preview.decision != "routed" or preview.payload is None:
        return _refused(ctx, f"not sent: {preview.decision}: {preview.reason}", text)
    message_id = str(raw["messageId"])
    if not ctx.state.outbox.enqueue([NewRow(name, message_id, preview.payload)]):
        return _refused(ctx, f"messageId {message_id!r} is already in {name}'s outbox", text)
    ctx.note(f"queued test message {message_id} for {name}")
    return destination(ctx, sent=message_id, message=text)


def _refused(ctx: PageContext, problem: str, text: str) -> Response:
    ctx.note(f"refused: {problem}")
    response = destination(ctx, problem=problem, message=text)
    response.status_code = 400
    return response

