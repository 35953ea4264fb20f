"""What one message would become for each destination, without sending or storing anything:
the filter's decision, the routed payload, and the requests (or other sends) the plugin plans,
secrets redacted. `crossdock route` prints it; the operator console's mapping tester shows it.

    previews = preview_route(loaded, {"type": "track", ...}, ["hook"])
    previews[0].decision, previews[0].payload, previews[0].planned

The message goes through the real steps: it is validated, enriched by a profile store of its
own (in memory, so it is seen as the person's first message and nothing is written), routed
by each destination's filter, rules and mapping, and planned by its plugin with this moment
as the attempt's time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from crossdock.config import ConfiguredDestination, LoadedConfig
from crossdock.destination import (
    FieldRefused,
    FilePut,
    OutboxItem,
    Planned,
    PlannedRequest,
    Rejected,
)
from crossdock.errors import MessageError
from crossdock.models import EnrichedMessage, parse_message
from crossdock.redact import redact_headers, redact_url, scrub, scrub_bytes, secret_values

#: how much of a body or file is shown
SHOWN_BYTES = 4000


@dataclass
class PlannedView:
    """One thing the plugin planned, as shown: a request or another send (what, where, with
    which items), or an item it rejects or a value it leaves out (with why)."""

    kind: Literal["http", "send", "rejected", "left out"]
    items: list[str]
    method: str = ""
    target: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    #: the body (parsed when it is JSON), or the start of a file
    body: Any = None
    rate_key: str = ""
    field: str = ""
    reason: str = ""


@dataclass
class RoutePreview:
    """One destination's view of the message."""

    destination: str
    plugin: str
    #: routed: a row would be written; skipped: the filter or rules keep it from this
    #: destination (reason says which); error: the mapping or the plugin failed on it
    decision: Literal["routed", "skipped", "error"]
    reason: str = ""
    payload: dict[str, Any] | None = None
    planned: list[PlannedView] = field(default_factory=list)


def preview_route(loaded: LoadedConfig, raw: Any, names: list[str] | None = None,
                  *, now: float | None = None) -> list[RoutePreview]:
    """Each named destination's preview (every enabled one when `names` is None). Raises
    MessageError when the message itself is invalid, KeyError for an unknown name."""
    destinations = (list(loaded.destinations) if names is None
                    else [loaded.destination(name) for name in names])
    enriched = _enrich(loaded, raw)
    at = time.time() if now is None else now
    return [_preview(destination, enriched, at) for destination in destinations]


def _enrich(loaded: LoadedConfig, raw: Any) -> EnrichedMessage:
    """The message after the profile step, from a store of its own in memory."""
    from crossdock.outbox.sqlite import SQLiteOutbox
    from crossdock.profiles import ProfileStore

    message = parse_message(raw)
    outbox = SQLiteOutbox(":memory:")
    try:
        store = ProfileStore(loaded.config.profiles, db=outbox.db)
        with outbox.transaction() as db:
            enriched = store.resolve(db, message)
    finally:
        outbox.close()
    # resolve returns the system events the message causes, then the message itself.
    return enriched[-1]


def _preview(destination: ConfiguredDestination, enriched: EnrichedMessage, at: float
             ) -> RoutePreview:
    from crossdock.route.router import Skip, route

    preview = RoutePreview(destination.name, destination.plugin.plugin_name, "routed")
    try:
        routed = route(enriched, destination)
    except MessageError as exc:
        preview.decision, preview.reason = "error", "; ".join(exc.problems)
        return preview
    if isinstance(routed, Skip):
        preview.decision, preview.reason = "skipped", routed.reason
        return preview
    preview.payload = routed
    if destination.function is not None:
        # The requests are what the operator's function returns for the payload, at
        # delivery; `crossdock functions test` runs it on this payload.
        preview.reason = ("its requests are what its function returns for this payload "
                          "(crossdock functions test FILE event.json --entry "
                          f"{destination.function[1].entry})")
        return preview
    message_id = str(enriched.message.get("messageId", ""))
    try:
        preview.planned = plan_payload(destination, message_id, routed, at)
    except PlanFailed as exc:
        preview.decision, preview.reason = "error", str(exc)
    return preview


class PlanFailed(Exception):
    """The plugin's build_requests raised (its message scrubbed of the settings' secrets)."""


def plan_payload(destination: ConfiguredDestination, message_id: str,
                 payload: dict[str, Any], at: float) -> list[PlannedView]:
    """What the destination's plugin plans for one routed payload (an outbox row's, as the
    engine would lease it at `at`), secrets redacted; nothing is sent. Raises PlanFailed when
    the plugin fails on it."""
    plugin = destination.plugin
    item = OutboxItem(1, message_id, payload, attempts=1, created_at=at, attempted_at=at)
    secrets = secret_values(plugin.settings)
    try:
        planned = list(plugin.build_requests([item]))
    except Exception as exc:  # what the engine would retry, shown rather than raised
        raise PlanFailed(scrub(f"plugin {plugin.plugin_name} build_requests failed: "
                               f"{type(exc).__name__}: {exc}", secrets)) from exc
    return [_view(entry, secrets) for entry in planned]


def _view(entry: Planned, secrets: list[str]) -> PlannedView:
    if isinstance(entry, Rejected):
        return PlannedView("rejected", [entry.item.message_id],
                           reason=scrub(entry.reason, secrets))
    if isinstance(entry, FieldRefused):
        return PlannedView("left out", [entry.item.message_id], field=entry.field,
                           reason=scrub(entry.reason, secrets))
    ids = [item.message_id for item in entry.items]
    if isinstance(entry, PlannedRequest):
        request = entry.request
        return PlannedView("http", ids, request.method, redact_url(str(request.url), secrets),
                           redact_headers(request.headers.items(), secrets),
                           _body(request.content, secrets), scrub(entry.rate_key, secrets))
    send = entry.send
    view = PlannedView("send", ids, send.kind, scrub(send.target(), secrets),
                       rate_key=scrub(entry.rate_key, secrets))
    if isinstance(send, FilePut):
        view.headers = {"content-type": send.content_type, "size": str(len(send.content))}
        view.body = _body(send.content, secrets)
    return view


def _body(content: bytes, secrets: list[str]) -> Any:
    """A body as shown: its JSON parsed, else its text (the start of it), secrets scrubbed."""
    if not content:
        return None
    text = scrub_bytes(content, secrets).decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text if len(text) <= SHOWN_BYTES else text[:SHOWN_BYTES] + "…"

