"""The Amplitude destination: events through the HTTP V2 API, user properties through the
Identify API.

    track, page, screen   POST {host}/2/httpapi   {"api_key", "events": [...], "options"?}
    identify              POST {host}/identify    api_key=...&identification=[...] (a form)

The host is the project's data residency (api2.amplitude.com, or api.eu.amplitude.com).
Events carry `insert_id` (the message id: Amplitude drops a repeat within 7 days, so a retry
never counts twice) and `session_id` (the start of the person's session in milliseconds, as
the profile store knows it). Requests hold at most 2,000 events and stay under 1 MB.

Amplitude refuses a whole request when some of its events are wrong, too many or throttled,
and says which. The plugin settles those and sends the rest again at once, as a `FollowUp` of
the same items (its step carries what is settled so far; the engine makes at most
MAX_FOLLOW_UPS):

    400 naming events       those are dead letters; the others are sent again
    413 (too large)         the first half is sent again now, the second half retried later
                            (one event alone: a dead letter)
    429 naming users,       those are retried after the pause Amplitude asks for (30 s for
    devices or events       events, 15 s for identify); the others are sent again
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import httpx

from crossdock.dates import epoch_millis
from crossdock.destination import (
    DELIVERED,
    MAX_FOLLOW_UPS,
    Destination,
    Failed,
    FieldRefused,
    FollowUp,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    Rejected,
    Retry,
    first_value,
    http_outcome,
    json_content,
    json_number,
    parse_retry_after,
    response_json,
    secret_rate_key,
    short_body,
)
from crossdock.plugins.amplitude.const import (
    DEFAULT_BATCH,
    DEFAULT_MIN_ID_LENGTH,
    EVENTS_PATH,
    EVENTS_PAUSE,
    IDENTIFY_PATH,
    IDENTIFY_PAUSE,
    MAX_BYTES,
    MAX_EVENTS,
    PLUGIN_NAME,
    UNSET_VALUE,
)
from crossdock.plugins.amplitude.settings import AmplitudeOptions, AmplitudeSettings

# The two kinds of request, and the steps of their follow-ups ("events resend {...}").
EVENTS, IDENTIFY = "events", "identify"
_RESEND = " resend "
#: Segment's context fields (keys under `context`) -> Amplitude's event and identification
#: fields
_CONTEXT_FIELDS = (
    ("app_version", ("app", "version")), ("platform", ("device", "type")),
    ("os_name", ("os", "name")), ("os_version", ("os", "version")),
    ("device_manufacturer", ("device", "manufacturer")),
    ("device_model", ("device", "model")), ("carrier", ("network", "carrier")),
    ("country", ("location", "country")), ("region", ("location", "region")),
    ("city", ("location", "city")), ("language", ("locale",)),
)
#: the bytes of a body around its events: the key, the wrapper, the options
_OVERHEAD = 200
#: price x quantity within this of the revenue is the same sum (float arithmetic)
_CENT = 0.005


class AmplitudeDestination(Destination[AmplitudeSettings, AmplitudeOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/amplitude.md",
        description="Amplitude: events through the HTTP V2 API, user properties through the "
                    "Identify API",
        message_types=frozenset({"track", "page", "screen", "identify"}),
        batch_size=DEFAULT_BATCH, max_batch_size=MAX_EVENTS, auth="api_key")

    # -- one message -------------------------------------------------------------------

    def ids(self, payload: dict[str, Any], refused: list[tuple[str, str]]) -> dict[str, str]:
        """user_id and device_id, each left out (and reported) when Amplitude would drop it;
        ItemRejected when neither is left."""
        shortest = self.settings.min_id_length
        found: dict[str, str] = {}
        for name, paths in (("user_id", self.opts.user_id), ("device_id", self.opts.device_id)):
            value = first_value(payload, *paths)
            if value is None:
                continue
            text = str(value)
            if len(text) < shortest:
                refused.append((name, f"left out: shorter than {shortest} characters "
                                      "(Amplitude's min_id_length)"))
            elif name == "device_id" and set(text) <= {"0", "-"}:
                refused.append((name, "left out: all zeros (an advertising id under Limit Ad "
                                      "Tracking), which Amplitude refuses"))
            else:
                found[name] = text
        if not found:
            read = ", ".join([*self.opts.user_id, *self.opts.device_id])
            raise ItemRejected(f"user_id, device_id: Amplitude needs one of at least "
                               f"{shortest} characters (read from {read}); this message has "
                               "none")
        return found

    def user_properties(self, payload: dict[str, Any], identify: bool,
                        refused: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """The user property operations of a message: on identify every trait ($setOnce for
        those options.user_properties.set_once names, $unset for a trait set to null, $set
        for the rest) and the operator's $unset list; on any message the $add increments.
        A property gets one operation: $unset, then $add, then $setOnce win over $set."""
        wanted = self.opts.user_properties
        ops: dict[str, dict[str, Any]] = {}
        taken: set[str] = set()

        def put(op: str, key: str, value: Any) -> None:
            if key not in taken:
                taken.add(key)
                ops.setdefault(op, {})[key] = value

        if identify:
            for key in wanted.unset:
                put("$unset", key, UNSET_VALUE)
            for key, value in (payload.get("traits") or {}).items():
                if value is None:
                    put("$unset", key, UNSET_VALUE)
        for key, path in wanted.add.items():
            value = first_value(payload, path)
            if value is None:
                continue
            if json_number(value) is None:
                refused.append((f"user_properties.$add.{key}",
                                f"left out: {path} is not a number ($add increments)"))
                continue
            put("$add", key, value)
        if identify:
            once = set(wanted.set_once)
            for key, value in (payload.get("traits") or {}).items():
                if value is not None:
                    put("$setOnce" if key in once else "$set", key, value)
        return ops

    def described(self, payload: dict[str, Any], body: dict[str, Any]) -> None:
        """The device and place fields Amplitude takes, from the message's context (read
        directly: most messages carry little context, and this runs for every event)."""
        context = payload.get("context")
        if not context:
            return
        for name, keys in _CONTEXT_FIELDS:
            value: Any = context
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str) and value:
                body[name] = value

    def event(self, item: OutboxItem, refused: list[tuple[str, str]]) -> dict[str, Any]:
        """A track, page or screen message as an HTTP V2 event."""
        payload = item.payload
        name = payload.get("event")
        if not name:
            raise ItemRejected("event: missing; Amplitude needs an event_type")
        event: dict[str, Any] = {"event_type": str(name), **self.ids(payload, refused),
                                 "insert_id": item.message_id}
        when = epoch_millis(payload.get("timestamp"))
        if when is not None:
            event["time"] = when
        session = epoch_millis(payload.get("sessionStart"))
        if session is not None:
            event["session_id"] = session
        properties = payload.get("properties") or {}
        if properties:
            event["event_properties"] = properties
        ops = self.user_properties(payload, False, refused)
        if ops:
            event["user_properties"] = ops
        self.described(payload, event)
        ip = (payload.get("context") or {}).get("ip")
        if isinstance(ip, str) and ip:
            event["ip"] = ip
        event.update(_revenue_fields(properties, refused))
        return event

    def identification(self, item: OutboxItem, refused: list[tuple[str, str]]
                       ) -> dict[str, Any]:
        """An identify message as an Identify API identification."""
        payload = item.payload
        body: dict[str, Any] = {**self.ids(payload, refused)}
        ops = self.user_properties(payload, True, refused)
        if ops:
            body["user_properties"] = ops
        self.described(payload, body)
        return body

    def encoded(self, item: OutboxItem, refused: list[tuple[str, str]]) -> bytes:
        """The item's event or identification as JSON bytes."""
        if item.payload.get("type") == "identify":
            return json_content(self.identification(item, refused))
        return json_content(self.event(item, refused))

    # -- requests ----------------------------------------------------------------------

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        out: list[Planned] = []
        groups: dict[str, list[tuple[OutboxItem, bytes]]] = {IDENTIFY: [], EVENTS: []}
        for item in items:
            refused: list[tuple[str, str]] = []
            try:
                encoded = self.encoded(item, refused)
            except ItemRejected as exc:
                out.append(Rejected(item, exc.reason))
                continue
            if len(encoded) + _OVERHEAD >= MAX_BYTES:
                out.append(Rejected(item, f"the message is {len(encoded)} bytes as JSON; "
                                          f"Amplitude takes requests under {MAX_BYTES} bytes"))
                continue
            out.extend(FieldRefused(item, name, why) for name, why in refused)
            kind = IDENTIFY if item.payload.get("type") == "identify" else EVENTS
            groups[kind].append((item, encoded))
        for kind, group in groups.items():
            for chunk in _chunked(group):
                out.append(PlannedRequest(self.request(kind, [e for _, e in chunk]),
                                          [i for i, _ in chunk], self.rate_key(), kind))
        return out

    def request(self, kind: str, encoded: Sequence[bytes]) -> httpx.Request:
        key = self.settings.api_key.get_secret_value()
        listed = b"[" + b",".join(encoded) + b"]"
        if kind == IDENTIFY:
            form = urlencode({"api_key": key, "identification": listed.decode()})
            return httpx.Request("POST", self.settings.root + IDENTIFY_PATH,
                                 content=form.encode(),
                                 headers={"content-type": "application/x-www-form-urlencoded",
                                          "accept": "*/*"})
        body = b'{"api_key":' + json_content(key) + b',"events":' + listed
        if self.settings.min_id_length != DEFAULT_MIN_ID_LENGTH:
            body += b',"options":' + json_content(
                {"min_id_length": self.settings.min_id_length})
        return httpx.Request("POST", self.settings.root + EVENTS_PATH, content=body + b"}",
                             headers={"content-type": "application/json", "accept": "*/*"})

    def rate_key(self) -> str:
        """Every request of a project shares its limits (per API key, hashed)."""
        return secret_rate_key("amplitude", self.settings.api_key.get_secret_value())

    # -- answers -----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | Sequence[Outcome] | FollowUp:
        items = planned.items
        kind, state = _state(planned.step, len(items))
        sent: list[int] = state["sent"]
        settled: dict[int, Outcome] = state["settled"]
        # index into `items` -> its outcome, or None: send it again now
        judged = self.judge(kind, [items[i] for i in sent], response)
        verdicts = dict(zip(sent, judged, strict=True))
        again = [i for i in sent if verdicts[i] is None]
        if again and state["n"] < MAX_FOLLOW_UPS:
            done = {**settled, **{i: o for i, o in verdicts.items() if o is not None}}
            request = self.request(kind, [self.encoded(items[i], []) for i in again])
            return FollowUp(request, _step(kind, again, done, state["n"] + 1))
        outcomes: list[Outcome] = []
        for index in range(len(items)):
            outcome = settled.get(index) or verdicts.get(index)
            outcomes.append(outcome or Retry("amplitude: sent again too many times in one "
                                             "attempt; retried", after=0.0))
        return outcomes

    def judge(self, kind: str, items: list[OutboxItem], response: httpx.Response
              ) -> list[Outcome | None]:
        """One outcome per item of a request (in its order), or None for an item to send
        again at once because Amplitude refused the request for the others' sake."""
        status = response.status_code
        count = len(items)
        if 200 <= status < 300:
            return [DELIVERED] * count
        body = response_json(response) or {}
        error = body.get("error")
        what = f"amplitude {status}" + (f": {error}" if isinstance(error, str) else "")
        if status == 413:
            if count == 1:
                return [Failed(f"{what}: this message alone is larger than Amplitude takes "
                               "in one request")]
            half = count // 2
            later = Retry(f"{what}: the request was split; retried in a later request",
                          after=0.0)
            split: list[Outcome | None] = [None] * half
            return split + [later] * (count - half)
        if status == 400 and kind == EVENTS:
            named = _named_events(body, count)
            if named and len(named) < count:
                return [Failed(f"{what} ({named[i]})") if i in named else None
                        for i in range(count)]
            if named:
                return [Failed(f"{what} ({named[i]})") for i in range(count)]
        if status == 429:
            pause = parse_retry_after(response.headers.get("retry-after"))
            if pause is None:
                pause = IDENTIFY_PAUSE if kind == IDENTIFY else EVENTS_PAUSE
            throttled = self.throttled(body, items)
            retry = Retry(f"{what}: throttled (more than the events per second Amplitude "
                          f"takes for one user or device); paused {pause:g}s", after=pause)
            if throttled and len(throttled) < count:
                return [retry if i in throttled else None for i in range(count)]
            return [retry] * count
        reason = f"{what}" if isinstance(error, str) else None
        if reason is None:
            reason = f"amplitude {status}: {short_body(response)}"
        return [http_outcome(response, reason)] * count

    def throttled(self, body: dict[str, Any], items: list[OutboxItem]) -> set[int]:
        """The items of a 429 whose event, user or device Amplitude names as throttled."""
        indices = body.get("throttled_events")
        found = {i for i in indices if isinstance(i, int) and 0 <= i < len(items)} \
            if isinstance(indices, list) else set()
        users = body.get("throttled_users")
        devices = body.get("throttled_devices")
        users = users if isinstance(users, dict) else {}
        devices = devices if isinstance(devices, dict) else {}
        if users or devices:
            for index, item in enumerate(items):
                try:
                    ids = self.ids(item.payload, [])
                except ItemRejected:
                    continue
                if ids.get("user_id") in users or ids.get("device_id") in devices:
                    found.add(index)
        return found


def _revenue_fields(properties: dict[str, Any], refused: list[tuple[str, str]]
                    ) -> dict[str, Any]:
    """The revenue fields of an event that has a `revenue` (Segment's Order Completed); none
    for one without (a Product Added's price and quantity stay event properties).

    Amplitude makes any event carrying `price` a revenue event and counts price x quantity
    (quantity 1 when absent), over `revenue` when both come: so price and quantity go only
    with a revenue they agree with."""
    revenue = json_number(properties.get("revenue"))
    if revenue is None:
        return {}
    fields: dict[str, Any] = {"revenue": revenue}
    price = json_number(properties.get("price"))
    quantity = json_number(properties.get("quantity"))
    if price is not None:
        units = int(quantity) if quantity is not None else 1
        if abs(price * units - revenue) < _CENT:
            fields["price"] = price
            if quantity is not None:
                fields["quantity"] = units
        else:
            refused.append(("price", f"left out: price x quantity ({price * units:g}) is not "
                                     f"the revenue ({revenue:g}), and Amplitude would count "
                                     "price x quantity"))
    product = properties.get("product_id") or properties.get("productId")
    if isinstance(product, str) and product:
        fields["productId"] = product
    return fields


def _named_events(body: dict[str, Any], count: int) -> dict[int, str]:
    """Event index -> what a 400 says is wrong with it (events_with_invalid_fields,
    events_with_missing_fields, silenced_events)."""
    named: dict[int, list[str]] = {}
    for key, word in (("events_with_invalid_fields", "invalid"),
                      ("events_with_missing_fields", "missing")):
        fields = body.get(key)
        if not isinstance(fields, dict):
            continue
        for field, indices in fields.items():
            for index in indices if isinstance(indices, list) else []:
                if isinstance(index, int) and 0 <= index < count:
                    named.setdefault(index, []).append(f"{field} {word}")
    silenced = body.get("silenced_events")
    for index in silenced if isinstance(silenced, list) else []:
        if isinstance(index, int) and 0 <= index < count:
            named.setdefault(index, []).append("its device is silenced")
    return {i: ", ".join(why) for i, why in named.items()}


def _chunked(group: list[tuple[OutboxItem, bytes]]) -> list[list[tuple[OutboxItem, bytes]]]:
    """Requests of at most MAX_EVENTS events and under MAX_BYTES, in order."""
    chunks: list[list[tuple[OutboxItem, bytes]]] = []
    current: list[tuple[OutboxItem, bytes]] = []
    size = _OVERHEAD
    for entry in group:
        grows = len(entry[1]) + 1
        if current and (len(current) == MAX_EVENTS or size + grows >= MAX_BYTES):
            chunks.append(current)
            current, size = [], _OVERHEAD
        current.append(entry)
        size += grows
    if current:
        chunks.append(current)
    return chunks


def _outcome_json(outcome: Outcome) -> list[Any]:
    if isinstance(outcome, Failed):
        return ["failed", outcome.reason]
    if isinstance(outcome, Retry):
        return ["retry", outcome.reason, outcome.after]
    return ["delivered"]


def _outcome(raw: list[Any]) -> Outcome:
    if raw[0] == "failed":
        return Failed(str(raw[1]))
    if raw[0] == "retry":
        return Retry(str(raw[1]), raw[2])
    return DELIVERED


def _step(kind: str, sent: list[int], settled: dict[int, Outcome], n: int) -> str:
    """A follow-up's step: which items it carries, what is settled for the others."""
    state = {"sent": sent, "n": n,
             "settled": {str(i): _outcome_json(o) for i, o in sorted(settled.items())}}
    return kind + _RESEND + json.dumps(state, separators=(",", ":"))


def _state(step: str, count: int) -> tuple[str, dict[str, Any]]:
    """(kind, state) of a request's step: a first request carries every item."""
    kind, _, raw = step.partition(_RESEND)
    if not raw:
        return kind, {"sent": list(range(count)), "settled": {}, "n": 0}
    state = json.loads(raw)
    state["settled"] = {int(i): _outcome(o) for i, o in state["settled"].items()}
    return kind, state
