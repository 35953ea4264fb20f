"""Contract fake of Amplitude's event ingestion (HTTP V2 API and Identify API): a real HTTP
server that refuses what Amplitude refuses.

    POST /2/httpapi   {"api_key", "events": [...], "options": {"min_id_length"}}  -> 200 / 400
                                                                                    / 413 / 429
    POST /identify    form: api_key, identification (a JSON object or array)      -> 200 / 400
                                                                                    / 413 / 429

The contract it enforces (sources on docs/destinations/amplitude.md):
- the project's API key in the body (no header): none -> 400 missing_field api_key, another
  key -> 400 "Invalid API key";
- a request under 1 MB and of at most 2,000 events -> else 413, nothing ingested;
- each event has an `event_type` and a `user_id` or `device_id` of at least 5 characters (or
  `options.min_id_length`); a device_id of all zeros is refused; `time` and `session_id` are
  integers (milliseconds); user property operations are Amplitude's ($set, $setOnce, $add of
  numbers, $unset, ...), one per property -> else 400 naming the events
  (`events_with_missing_fields` / `events_with_invalid_fields`: field -> event indices), and
  nothing of the request is ingested;
- an event repeating an `insert_id` seen in the past 7 days is dropped (counted in
  `deduplicated`), the request still succeeds;
- at most 30 events per second for each user_id and each device_id (`eps_threshold`, per
  `throttle_window` seconds) -> 429 naming `throttled_users`, `throttled_devices` and
  `throttled_events`, nothing ingested;
- events from a silenced device (`silenced_devices`) -> 400 with `silenced_events`.
An event with a `price` is a revenue event worth price x quantity (quantity 1 when absent),
whatever its `revenue` says (`revenue_of`).
User properties are applied to the fake's users (by user_id, else device_id) as Amplitude
applies their operations. Scripted replies (`fake.script([503])`) answer first.

    python -m crossdock.plugins.amplitude.fake --port 8093 --api-key demo-key
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from crossdock.plugins.amplitude.const import (
    DEFAULT_MIN_ID_LENGTH,
    EPS_THRESHOLD,
    EVENTS_PATH,
    IDENTIFY_PATH,
    MAX_BYTES,
    MAX_EVENTS,
    OPERATIONS,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[AmplitudeFake] = web.AppKey("amplitude_fake")
DEFAULT_KEY = "amplitude-test-key"
#: how long an insert_id deduplicates (Amplitude: 7 days)
DEDUP_SECONDS = 7 * 24 * 3600.0
_INTEGER_FIELDS = ("time", "session_id", "event_id", "quantity")
_NUMBER_FIELDS = ("revenue", "price", "location_lat", "location_lng")


def revenue_of(event: dict[str, Any]) -> float | None:
    """What Amplitude counts as an event's revenue: price x quantity (quantity 1 when absent)
    when the event has a price, else its revenue; None for an event that is no revenue
    event."""
    price = event.get("price")
    if isinstance(price, (int, float)):
        quantity = event.get("quantity")
        return float(price) * (quantity if isinstance(quantity, int) else 1)
    revenue = event.get("revenue")
    return float(revenue) if isinstance(revenue, (int, float)) else None


def _refused(status: int, body: dict[str, Any]) -> Refused:
    """A request Amplitude answers with an error status and body."""
    return Refused(status, {"code": status, **body})


@dataclass
class AmplitudeFake(FakeState):
    """What the Amplitude fake knows (the project's key, its limits) and holds (events
    ingested, users with their properties, identifications, insert_ids seen)."""

    api_key: str = DEFAULT_KEY
    max_events: int = MAX_EVENTS
    max_bytes: int = MAX_BYTES
    eps_threshold: int = EPS_THRESHOLD
    #: the window the per-user and per-device rate is counted in (seconds)
    throttle_window: float = 1.0
    silenced_devices: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.time
    events: list[dict[str, Any]] = field(default_factory=list)
    identifications: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    deduplicated: int = 0
    _seen: dict[str, float] = field(default_factory=dict, repr=False)
    _window: FixedWindow | None = field(default=None, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.events.clear()
            self.identifications.clear()
            self.users.clear()
            self.deduplicated = 0
            self._seen.clear()
            self._window = None

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(events=list(self.events), identifications=list(self.identifications),
                        users=copy.deepcopy(self.users), deduplicated=self.deduplicated)
        return snap

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]

    # -- the contract ------------------------------------------------------------------

    def check_key(self, key: Any) -> None:
        if not key:
            raise _refused(400, {"error": "Request missing required field",
                                 "missing_field": "api_key"})
        if key != self.api_key:
            raise _refused(400, {"error": "Invalid API key"})

    def check_ids(self, record: dict[str, Any], shortest: int) -> dict[str, str]:
        """field -> what is wrong with the record's user_id / device_id."""
        wrong: dict[str, str] = {}
        present = [name for name in ("user_id", "device_id") if record.get(name) is not None]
        if not present:
            return {"user_id": "missing"}
        for name in present:
            value = record[name]
            # Too short, or a device id of zeros (an IDFA under Limit Ad Tracking).
            zeros = name == "device_id" and isinstance(value, str) and set(value) <= {"0", "-"}
            if not isinstance(value, str) or len(value) < shortest or zeros:
                wrong[name] = "invalid"
        return wrong

    def check_operations(self, properties: Any) -> bool:
        """Whether user_properties are an object of known operations (each property in
        one), or plain properties (a $set)."""
        if not isinstance(properties, dict):
            return False
        if not any(key.startswith("$") for key in properties):
            return True
        seen: set[str] = set()
        for op, values in properties.items():
            if op not in OPERATIONS or not isinstance(values, dict):
                return False
            if op == "$add" and any(isinstance(v, bool) or not isinstance(v, int | float)
                                    for v in values.values()):
                return False
            if seen & set(values):
                return False
            seen |= set(values)
        return True

    def check_event(self, event: Any, shortest: int) -> dict[str, str]:
        if not isinstance(event, dict):
            return {"event_type": "missing"}
        wrong = self.check_ids(event, shortest)
        kind = event.get("event_type")
        if not isinstance(kind, str) or not kind:
            wrong["event_type"] = "missing" if kind is None else "invalid"
        for name in _INTEGER_FIELDS:
            value = event.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                wrong[name] = "invalid"
        for name in _NUMBER_FIELDS:
            value = event.get(name)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float)):
                wrong[name] = "invalid"
        insert_id = event.get("insert_id")
        if insert_id is not None and not isinstance(insert_id, str):
            wrong["insert_id"] = "invalid"
        if "event_properties" in event and not isinstance(event["event_properties"], dict):
            wrong["event_properties"] = "invalid"
        if "user_properties" in event and not self.check_operations(event["user_properties"]):
            wrong["user_properties"] = "invalid"
        return wrong

    def throttle(self, records: list[dict[str, Any]]) -> None:
        """Count each record against its user's and its device's rate: 429 naming those past
        the threshold (nothing of the request is ingested)."""
        with self._lock:
            if self._window is None:
                self._window = FixedWindow(self.eps_threshold * self.throttle_window,
                                           self.throttle_window, self.clock)
            window = self._window
        users: dict[str, int] = {}
        devices: dict[str, int] = {}
        for record in records:
            for name, counts in (("user_id", users), ("device_id", devices)):
                if isinstance(record.get(name), str):
                    counts[record[name]] = counts.get(record[name], 0) + 1
        over: dict[str, dict[str, float]] = {"user_id": {}, "device_id": {}}
        for name, counts, prefix in (("user_id", users, "u"), ("device_id", devices, "d")):
            for key, n in counts.items():
                taken = window.take(f"{prefix}:{key}", n)
                if not taken.allowed:
                    # the rate this request would have made, as Amplitude reports it
                    rate = (taken.limit - taken.remaining + n) / self.throttle_window
                    over[name][key] = int(rate) if rate == int(rate) else rate
        if not over["user_id"] and not over["device_id"]:
            return
        throttled = [i for i, r in enumerate(records)
                     if r.get("user_id") in over["user_id"]
                     or r.get("device_id") in over["device_id"]]
        raise _refused(429, {
            "error": "Too many requests for some devices and users",
            "eps_threshold": self.eps_threshold,
            "throttled_users": over["user_id"], "throttled_devices": over["device_id"],
            "throttled_events": throttled})

    def upload(self, raw: bytes, body: Any) -> dict[str, Any]:
        if len(raw) >= self.max_bytes:
            raise _refused(413, {"error": "Payload too large"})
        if not isinstance(body, dict):
            raise _refused(400, {"error": "Invalid JSON request body"})
        self.check_key(body.get("api_key"))
        events = body.get("events")
        if not isinstance(events, list) or not events:
            raise _refused(400, {"error": "Request missing required field",
                                 "missing_field": "events"})
        if len(events) > self.max_events:
            raise _refused(413, {"error": "Payload too large"})
        options = body.get("options") or {}
        shortest = options.get("min_id_length", DEFAULT_MIN_ID_LENGTH) \
            if isinstance(options, dict) else DEFAULT_MIN_ID_LENGTH
        if isinstance(shortest, bool) or not isinstance(shortest, int) or shortest < 1:
            raise _refused(400, {"error": "Invalid options: min_id_length"})
        invalid: dict[str, list[int]] = {}
        missing: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            for name, how in self.check_event(event, shortest).items():
                (missing if how == "missing" else invalid).setdefault(name, []).append(index)
        if missing or invalid:
            raise _refused(400, {
                "error": "Request missing required field" if missing and not invalid
                else "Invalid field values on some events",
                "events_with_missing_fields": missing, "events_with_invalid_fields": invalid})
        silenced = [i for i, e in enumerate(events) if e.get("device_id") in
                    self.silenced_devices]
        if silenced:
            raise _refused(400, {"error": "Events from silenced devices",
                                 "silenced_devices": sorted(self.silenced_devices),
                                 "silenced_events": silenced})
        self.throttle(events)
        now = self.clock()
        ingested = 0
        with self._lock:
            for event in events:
                insert_id = event.get("insert_id")
                if insert_id is not None:
                    seen = self._seen.get(insert_id)
                    if seen is not None and now - seen < DEDUP_SECONDS:
                        self.deduplicated += 1
                        continue
                    self._seen[insert_id] = now
                self.events.append(event)
                ingested += 1
                if event.get("user_properties"):
                    self._apply(event, event["user_properties"])
        return {"code": 200, "events_ingested": ingested, "payload_size_bytes": len(raw),
                "server_upload_time": int(now * 1000)}

    def identify(self, raw: bytes) -> None:
        if len(raw) >= self.max_bytes:
            raise _refused(413, {"error": "Payload too large"})
        form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
        self.check_key(form.get("api_key"))
        try:
            parsed = json.loads(form.get("identification") or "")
        except ValueError:
            raise _refused(400, {"error": "Request missing required field",
                                 "missing_field": "identification"}) from None
        records = parsed if isinstance(parsed, list) else [parsed]
        for record in records:
            if not isinstance(record, dict) or self.check_ids(record, DEFAULT_MIN_ID_LENGTH):
                raise _refused(400, {"error": "Invalid identification: a user_id or device_id "
                                              "of at least 5 characters is required"})
            if "user_properties" in record and not self.check_operations(
                    record["user_properties"]):
                raise _refused(400, {"error": "Invalid user_properties"})
        self.throttle(records)
        with self._lock:
            for record in records:
                self.identifications.append(record)
                self._apply(record, record.get("user_properties") or {})

    def _apply(self, record: dict[str, Any], operations: dict[str, Any]) -> None:
        """Apply user property operations as Amplitude does (called under the lock)."""
        key = record.get("user_id") or f"device:{record.get('device_id')}"
        props = self.users.setdefault(key, {})
        if not any(k.startswith("$") for k in operations):
            operations = {"$set": operations}
        for op, values in operations.items():
            for name, value in values.items():
                if op == "$set":
                    props[name] = value
                elif op == "$setOnce":
                    props.setdefault(name, value)
                elif op == "$add":
                    props[name] = props.get(name, 0) + value
                elif op == "$unset":
                    props.pop(name, None)
                elif op in ("$append", "$postInsert"):
                    props[name] = [*_listed(props.get(name)), *_listed(value)]
                elif op in ("$prepend", "$preInsert"):
                    props[name] = [*_listed(value), *_listed(props.get(name))]
                elif op == "$remove":
                    props[name] = [v for v in _listed(props.get(name))
                                   if v not in _listed(value)]
            if op == "$clearAll":
                props.clear()


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def make_app(fake: AmplitudeFake | None = None) -> web.Application:
    """The Amplitude fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or AmplitudeFake()
    # Bodies past Amplitude's limit must reach the fake, which answers 413 as Amplitude does.
    app = fake_app(FAKE_KEY, fake, client_max_size=4 * fake.max_bytes)

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        raw = await request.read()
        entry: dict[str, Any] = {
            "method": request.method, "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body_json(raw) if request.path == EVENTS_PATH else raw.decode(
                errors="replace"),
        }
        response = _answer(fake, request, raw)
        entry["status"] = response.status
        fake.record(entry)
        return response

    app.router.add_post(EVENTS_PATH, handle)
    app.router.add_post(IDENTIFY_PATH, handle)
    return app


def _answer(fake: AmplitudeFake, request: web.Request, raw: bytes) -> web.Response:
    reply = fake.next_reply()
    if reply is not None and not reply.passes:
        return reply.response()
    try:
        if request.path == IDENTIFY_PATH:
            fake.identify(raw)
            return web.Response(text="success")
        return web.json_response(fake.upload(raw, body_json(raw)))
    except Refused as refused:
        return web.json_response(refused.body, status=refused.status)


DEMO_KEY = "demo-amplitude-key"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Amplitude destination (the register_demo_destinations hook)."""
    fake = AmplitudeFake(api_key=DEMO_KEY)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body")
        if isinstance(body, dict):
            names = ", ".join(str(e.get("event_type")) for e in body.get("events") or []
                              if isinstance(e, dict))
            return f"POST {entry['path']} [{names}] -> {entry['status']}"
        return f"POST {entry['path']} (user properties) -> {entry['status']}"

    def state() -> list[str]:
        users = server.call(lambda: copy.deepcopy(fake.users))
        return [f"user {key}: {', '.join(sorted(props))}" for key, props in sorted(users.items())]

    return DemoDestination(
        "amplitude",
        {"plugin": "amplitude",
         "settings": {"base_url": server.url, "api_key": DEMO_KEY},
         "mapping": {"options": {"user_properties": {"set_once": ["firstName"]}}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Amplitude contract fake.", 8093)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    args = parser.parse_args(argv)
    fake = AmplitudeFake(api_key=args.api_key, latency=args.latency)
    run_fake(make_app(fake), args, f"Amplitude fake on {{url}} (key {args.api_key}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()
