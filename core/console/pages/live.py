"""Live events: a tail of accepted messages (Server-Sent Events), each expandable to what
every destination got from it (its outbox row: the routed payload and its state; or, when it
has none, why the filter keeps the message from it), like Segment's debugger; pausable;
filtered by type, event name and user.

The tail reads the kept messages (outbox.keep_messages), so it shows what every daemon of a
fleet accepts, and `crossdock console` shows it as well as `crossdock run`. Without
JavaScript the page lists the latest messages (reload for more)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from crossdock.console.app import PageContext, PageError, PageRegistry, whole_number
from crossdock.console.reads import last_kept_seq, recent_kept
from crossdock.errors import MessageError
from crossdock.models import EnrichedMessage
from crossdock.outbox.base import KeptMessage

#: messages the page starts with
LATEST = 50
#: how often the stream looks for new messages (seconds)
POLL = 0.5
#: a stream ends after this long (the browser reconnects where it left off: Last-Event-ID)
STREAM_SECONDS = 300.0
#: a comment line this often keeps proxies from closing an idle stream
KEEPALIVE = 15.0
#: messages read per look
READ = 200
MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")


def register(pages: PageRegistry) -> None:
    pages.nav("live", "Live events", "/live")
    pages.get("/live", live)
    pages.get("/live/stream", stream)
    # The id is a query parameter, not a path segment: a sender's messageId may hold "/" or
    # be "..", which no encoding keeps a browser from reading as path structure.
    pages.get("/live/message", decisions)


@dataclass(frozen=True)
class LiveFilter:
    type: str = ""
    event: str = ""
    user: str = ""

    def matches(self, kept: KeptMessage) -> bool:
        message: dict[str, Any] = kept.enriched.get("message") or {}
        if self.type and message.get("type") != self.type:
            return False
        if self.event and self.event.lower() not in str(message.get("event") or "").lower():
            return False
        return not self.user or self.user in (str(message.get("userId") or ""),
                                              str(message.get("anonymousId") or ""))

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("type", self.type), ("event", self.event),
                                  ("user", self.user)) if v}


def live_filter(ctx: PageContext) -> LiveFilter:
    chosen = LiveFilter(ctx.query("type"), ctx.query("event"), ctx.query("user"))
    if chosen.type and chosen.type not in MESSAGE_TYPES:
        raise PageError(f"type: {chosen.type!r} is not a message type (one of "
                        f"{', '.join(MESSAGE_TYPES)})")
    return chosen


def live(ctx: PageContext) -> Response:
    problem = ""
    try:
        chosen = live_filter(ctx)
    except PageError as exc:
        chosen, problem = LiveFilter(), exc.message
    outbox = ctx.state.outbox
    latest = [m for m in recent_kept(outbox, LATEST * 4) if chosen.matches(m)][:LATEST]
    return ctx.render("live.html", 400 if problem else 200, chosen=chosen, types=MESSAGE_TYPES,
                      latest=latest, after=last_kept_seq(outbox), problem=problem,
                      keeping=ctx.state.loaded.config.outbox.keep_messages > 0)


async def stream(ctx: PageContext) -> Response:
    """text/event-stream: one `message` event per new accepted message matching the filter,
    its id the message's seq (so a reconnect resumes after it), its data the list item."""
    chosen = live_filter(ctx)
    state = ctx.state
    given = ctx.request.headers.get("last-event-id") or ctx.query("after")
    after = (whole_number("after", given) if given
             else await run_in_threadpool(last_kept_seq, state.outbox))

    async def events() -> AsyncIterator[str]:
        nonlocal after
        yield "retry: 2000\n\n"
        started = last_sent = checked = time.monotonic()
        while not state.stopping and time.monotonic() - started < STREAM_SECONDS:
            if time.monotonic() - checked >= state.session_check_every:
                # An open stream outlives no session: a logout (here or on another daemon)
                # or a changed credential ends it at the next check.
                checked = time.monotonic()
                now_user = await ctx.console.user_of(ctx.request)
                if now_user is None or now_user.session != ctx.user.session:
                    yield "event: ended\ndata: session ended\n\n"
                    return
            found = await run_in_threadpool(state.outbox.kept_between, 0, None, after, READ)
            for kept in found:
                after = kept.seq
                if chosen.matches(kept):
                    html = ctx.render_text("_live_event.html", m=kept)
                    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
                    yield f"id: {kept.seq}\nevent: message\n{data}\n"
                    last_sent = time.monotonic()
            if len(found) < READ:
                if time.monotonic() - last_sent > KEEPALIVE:
                    yield ": still here\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(POLL)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


@dataclass(frozen=True)
class Decision:
    destination: str
    #: the outbox row's state (queued, delivered, dead, ...), or "" when there is no row
    state: str
    payload: dict[str, Any] | None
    reason: str


def decisions(ctx: PageContext) -> Response:
    """Each destination's side of one message: its outbox row (state and routed payload), or
    when it has none, why the current filter does not send it there."""
    from crossdock.route.router import Skip, route

    message_id = ctx.request.query_params.get("id", "")
    if not message_id:
        raise PageError("id: the message's id is required (/console/live/message?id=...)")
    outbox = ctx.state.outbox
    kept = outbox.kept([message_id]).get(message_id)
    if kept is None:
        raise PageError(f"message {message_id!r} is not kept (any more)", 404)
    enriched = EnrichedMessage.from_json(kept.enriched)
    found = []
    for destination in ctx.state.loaded.routed:
        row = outbox.row(destination.name, message_id)
        if row is not None:
            reason = ctx.state.scrub(str(row.get("last_error") or ""))
            found.append(Decision(destination.name, str(row["state"]), row["payload"], reason))
            continue
        try:
            routed = route(enriched, destination)
        except MessageError as exc:
            found.append(Decision(destination.name, "", None,
                                  "the mapping cannot shape it: " + "; ".join(exc.problems)))
            continue
        why = routed.reason if isinstance(routed, Skip) else (
            "no row: routed now, but not when it was accepted (the config changed since)")
        found.append(Decision(destination.name, "", None, why))
    template = "_live_decisions.html" if ctx.htmx else "live_message.html"
    return ctx.render(template, m=kept, decisions=found)
