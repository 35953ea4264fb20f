"""Dead letters: filter by destination, reason and time; open one (the message as accepted,
the routed payload, the request the plugin makes of it, the reason the destination gave);
replay one, a selection or everything the filter selects, through the current filter and
mapping, after a dry run that shows what would be sent. The same reads and the same replay
as `crossdock dead-letters list|replay`."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from starlette.responses import Response

from crossdock.console.app import PageContext, PageError, PageRegistry, whole_number
from crossdock.outbox.base import DeadLetter, RowQuery
from crossdock.replay import plan_replay, requeue
from crossdock.route.preview import PlanFailed, PlannedView, plan_payload
from crossdock.views import (
    MissingRows,
    UnknownDestination,
    check_destination,
    dead_letters,
    parse_when,
    replay_rows,
)

#: dead letters listed on one page
SHOWN = 200


def register(pages: PageRegistry) -> None:
    pages.nav("dead-letters", "Dead letters", "/dead-letters")
    pages.get("/dead-letters", listing)
    pages.get("/dead-letters/dry-run", dry_run)
    pages.post("/dead-letters/replay", replay)
    pages.get("/dead-letters/{id:int}", letter)


@dataclass(frozen=True)
class Filters:
    """The list's filters as given (strings, for the form) and as a query."""

    destination: str
    reason: str
    since: str
    until: str
    query: RowQuery

    @property
    def any(self) -> bool:
        return bool(self.destination or self.reason or self.since or self.until)

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("destination", self.destination), ("reason", self.reason),
                                  ("since", self.since), ("until", self.until)) if v}


def filters(ctx: PageContext, get: str = "query", ids: list[int] | None = None) -> Filters:
    """The filters of the request (its query, or a POST's form); PageError for a value that
    cannot be used: an unknown destination, a time that is not one."""
    read = ctx.query if get == "query" else ctx.field
    destination, reason = read("destination").strip(), read("reason")
    since, until = read("since").strip(), read("until").strip()
    try:
        check_destination(ctx.state.loaded, ctx.state.outbox, destination or None)
    except UnknownDestination as exc:
        raise PageError(f"destination: {exc}") from None
    times: dict[str, float | None] = {}
    for name, value in (("since", since), ("until", until)):
        try:
            times[name] = parse_when(value) if value else None
        except ValueError as exc:
            raise PageError(f"{name}: {exc}") from None
    return Filters(destination, reason, since, until, RowQuery(
        "dead", destination or None, ids or None, reason or None, times["since"],
        times["until"]))


def listing(ctx: PageContext) -> Response:
    try:
        chosen = filters(ctx)
    except PageError as exc:
        return _list(ctx, None, problem=exc.message, status=400)
    return _list(ctx, chosen)


def _list(ctx: PageContext, chosen: Filters | None, *, problem: str = "", status: int = 200,
          done: str = "") -> Response:
    outbox = ctx.state.outbox
    if chosen is None:
        letters: list[DeadLetter] = []
    elif chosen.any:
        letters = outbox.find_rows(replace(chosen.query, limit=SHOWN, newest_first=True))
    else:
        letters = dead_letters(ctx.state.loaded, outbox, None, SHOWN)
    names = sorted({d.name for d in ctx.state.loaded.destinations}
                   | set(ctx.state.loaded.withheld))
    return ctx.render("dead_letters.html", status, letters=letters, names=names,
                      chosen=chosen or Filters("", "", "", "", RowQuery()),
                      shown=SHOWN, problem=problem, done=done,
                      raw=dict(ctx.request.query_params))


def letter(ctx: PageContext) -> Response:
    id_ = whole_number("id", str(ctx.request.path_params["id"]))
    rows = ctx.state.outbox.find_rows(RowQuery("dead", ids=[id_]))
    if not rows:
        raise PageError(f"no dead letter with id {id_} (replayed, or never one)", 404)
    found = rows[0]
    kept = ctx.state.outbox.kept([found.message_id]).get(found.message_id)
    planned: list[PlannedView] = []
    plan_problem = ""
    try:
        configured = ctx.state.loaded.destination(found.destination)
    except KeyError:
        plan_problem = f"{found.destination} is not an enabled destination of the config"
    else:
        try:
            planned = plan_payload(configured, found.message_id, found.payload, time.time())
        except PlanFailed as exc:
            plan_problem = str(exc)
    (plan,) = plan_replay(ctx.state.loaded, ctx.state.outbox, [found])
    return ctx.render("dead_letter.html", letter=found, kept=kept, planned=planned,
                      plan_problem=plan_problem, plan=plan)


def _ids(ctx: PageContext, values: list[str]) -> list[int]:
    return [whole_number("ids", value) for value in values]


def _selected(ctx: PageContext, values: list[str], what: str, get: str) -> tuple[
        Filters, list[DeadLetter]]:
    """The dead letters a replay (or its dry run) is about: the ids ticked, else everything
    the filter selects ("all" ticked); PageError for nothing, or an id that is none."""
    ids = _ids(ctx, values)
    every = (ctx.query("all") if get == "query" else ctx.field("all")) == "1"
    chosen = filters(ctx, get, ids)
    if not ids and not every:
        raise PageError(f"{what}: nothing chosen. Tick dead letters, or choose \"everything "
                        "the filter selects\".")
    try:
        rows = replay_rows(ctx.state.loaded, ctx.state.outbox, chosen.query)
    except MissingRows as exc:
        raise PageError(f"ids: {exc}") from None
    if not rows:
        raise PageError(f"{what}: no dead letter matches the filter: nothing to replay")
    return chosen, rows


def dry_run(ctx: PageContext) -> Response:
    """What a replay would send, row by row; changes nothing (so read-only users may look)."""
    as_stored = ctx.query("as_stored") == "1"
    chosen, rows = _selected(ctx, ctx.request.query_params.getlist("ids"), "dry run", "query")
    plans = plan_replay(ctx.state.loaded, ctx.state.outbox, rows, as_stored=as_stored)
    return ctx.render("replay_plan.html", plans=plans, chosen=chosen, as_stored=as_stored,
                      ids=[row.id for row in rows] if not ctx.query("all") else [],
                      every=ctx.query("all") == "1")


def replay(ctx: PageContext) -> Response:
    as_stored = ctx.field("as_stored") == "1"
    chosen, rows = _selected(ctx, ctx.fields("ids"), "replay", "form")
    plans = plan_replay(ctx.state.loaded, ctx.state.outbox, rows, as_stored=as_stored)
    count = requeue(ctx.state.outbox, "dead", plans)
    skipped = [p for p in plans if not p.queued]
    ctx.note(f"replayed {count} of {len(plans)} dead letters"
             + (f" (ids {', '.join(str(p.row.id) for p in plans)})" if len(plans) <= 20 else "")
             + (f" matching {chosen.params()}" if chosen.any else ""))
    done = f"Replayed {count} of {len(plans)} dead letters."
    if skipped:
        done += " Not replayed: " + "; ".join(
            f"{p.row.id} ({p.how}{': ' + p.detail if p.detail else ''})" for p in skipped[:10])
    return _list(ctx, filters(ctx, "form"), done=done)
