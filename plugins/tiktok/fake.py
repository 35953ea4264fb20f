"""Contract fake of TikTok's Events API 2.0 (`event/track`): a real HTTP server that refuses
what TikTok refuses, the way TikTok says it: HTTP 200 with a non-zero `code`.

    POST /open_api/v1.3/event/track/   Access-Token header, JSON body   -> {"code": 0, ...}

The contract it enforces (sources on docs/destinations/tiktok.md):
- the `Access-Token` header: none -> code 40104, another token -> 40105;
- `event_source` is web, app, offline or crm; `event_source_id` a pixel (or event set) the
  token may write to -> else 40001 "No permission to operate pixel code";
- `data` holds 1 to 1,000 events; each has an `event` name, an `event_time` in seconds, a
  `user` whose email, phone and external_id are SHA-256 hex digests, contents with a
  `content_id`, a `content_type` of product or product_group, and a `value` only with an ISO
  4217 `currency` -> else 40002 naming the event ("Batch.0.user.email: ..."), nothing of
  the request is recorded;
- an `event_id` seen before for the same event of the same source, within 48 hours of the
  first copy, is deduplicated (counted in `deduplicated`); after that it counts again;
  events of a request with a `test_event_code` go to `test_events`, not `events`; reserved
  names are mapped to their standard event (`mapped`);
- at most `qps` requests per second (none unless set) -> code 40100.
Scripted replies (`fake.script([503])`) answer first.

    python -m crossdock.plugins.tiktok.fake --port 8094 --access-token demo-token
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crossdock.plugins.tiktok.const import (
    EVENT_SOURCES,
    HASHED_FIELDS,
    INVALID_PARAMETER,
    MAX_EVENTS,
    NO_PERMISSION,
    RATE_LIMITED,
    RESERVED_EVENTS,
    TRACK_PATH,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[TikTokFake] = web.AppKey("tiktok_fake")
PREFIX = "/open_api/v1.3"
DEFAULT_TOKEN = "tiktok-test-token"
DEFAULT_PIXEL = "CTESTPIXEL0001"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
#: seconds: an event_time past 10**10 is in milliseconds, not seconds
_LATEST_SECONDS = 10**10
#: seconds after the first copy during which TikTok drops a repeat of (event, event_id)
DEDUP_WINDOW = 48 * 3600.0


def _refused(code: int, message: str) -> Refused:
    """A request TikTok answers with a non-zero code (HTTP 200)."""
    return Refused(200, {"code": code, "message": message})


@dataclass
class TikTokFake(FakeState):
    """What the TikTok fake knows (the token, the pixels it may write to) and holds (events,
    test events, what it deduplicated or mapped, every request it answered)."""

    access_token: str = DEFAULT_TOKEN
    pixels: set[str] = field(default_factory=lambda: {DEFAULT_PIXEL})
    #: requests per second (None: no limit)
    qps: int | None = None
    clock: Callable[[], float] = time.monotonic
    events: list[dict[str, Any]] = field(default_factory=list)
    test_events: list[dict[str, Any]] = field(default_factory=list)
    mapped: list[tuple[str, str]] = field(default_factory=list)
    deduplicated: int = 0
    #: (pixel, event, event_id) -> when the first copy arrived (the clock's seconds)
    _seen: dict[tuple[str, str, str], float] = field(default_factory=dict, repr=False)
    _window: FixedWindow | None = field(default=None, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.events.clear()
            self.test_events.clear()
            self.mapped.clear()
            self.deduplicated = 0
            self._seen.clear()
            self._window = None

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(events=list(self.events), test_events=list(self.test_events),
                        deduplicated=self.deduplicated)
        return snap

    def codes(self) -> list[int | None]:
        """The `code` of every answered request, in arrival order."""
        return [r.get("code") for r in self.received]

    # -- the contract ------------------------------------------------------------------

    def check_token(self, token: str | None) -> None:
        if not token:
            raise _refused(40104, "Access token is null; it is required in the Access-Token "
                                  "header")
        if token != self.access_token:
            raise _refused(40105, "Access token is invalid or has been revoked")

    def throttle(self) -> None:
        if self.qps is None:
            return
        with self._lock:
            if self._window is None:
                self._window = FixedWindow(self.qps, 1.0, self.clock)
            window = self._window
        if not window.take("track").allowed:
            raise _refused(RATE_LIMITED, "Too many requests. Please retry in some time.")

    def track(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _refused(INVALID_PARAMETER, "the body must be a JSON object")
        source = body.get("event_source")
        if source not in EVENT_SOURCES:
            raise _refused(INVALID_PARAMETER, "event_source: must be one of web, app, "
                                              "offline, crm")
        pixel = body.get("event_source_id")
        if pixel not in self.pixels:
            raise _refused(NO_PERMISSION, f"No permission to operate pixel code: {pixel}")
        data = body.get("data")
        if not isinstance(data, list) or not data:
            raise _refused(INVALID_PARAMETER, "data: at least one event is required")
        if len(data) > MAX_EVENTS:
            raise _refused(INVALID_PARAMETER, f"data: at most {MAX_EVENTS} events")
        for index, event in enumerate(data):
            problem = _event_problem(event)
            if problem is not None:
                raise _refused(INVALID_PARAMETER, f"Batch.{index}.{problem}")
        test = body.get("test_event_code")
        with self._lock:
            for event in data:
                name = event["event"]
                if name in RESERVED_EVENTS:
                    self.mapped.append((name, RESERVED_EVENTS[name]))
                key = (str(pixel), str(name), str(event.get("event_id") or ""))
                if event.get("event_id"):
                    now = self.clock()
                    first = self._seen.get(key)
                    if first is not None and now - first < DEDUP_WINDOW:
                        self.deduplicated += 1
                        continue
                    self._seen[key] = now
                (self.test_events if test else self.events).append(event)


def _event_problem(event: Any) -> str | None:
    """What is wrong with one event ("user.email: ..."), or None."""
    if not isinstance(event, dict):
        return "event: must be an object"
    if not isinstance(event.get("event"), str) or not event["event"]:
        return "event: Missing data for required field."
    when = event.get("event_time")
    if isinstance(when, bool) or not isinstance(when, int) or not 0 < when < _LATEST_SECONDS:
        return "event_time: a unix timestamp in seconds is required"
    if "event_id" in event and not isinstance(event["event_id"], str):
        return "event_id: Not a valid string."
    user = event.get("user")
    if not isinstance(user, dict):
        return "user: Missing data for required field."
    for name in HASHED_FIELDS:
        value = user.get(name)
        if value is not None and not (isinstance(value, str) and _HEX64.match(value)):
            return f"user.{name}: must be hashed with SHA-256 (lower-case hex)"
    properties = event.get("properties") or {}
    if not isinstance(properties, dict):
        return "properties: must be an object"
    contents = properties.get("contents")
    if contents is not None:
        if not isinstance(contents, list):
            return "properties.contents: Not a valid list."
        for n, content in enumerate(contents):
            if not isinstance(content, dict) or not isinstance(content.get("content_id"), str):
                return f"properties.contents.{n}.content_id: Not a valid string."
    if properties.get("content_type", "product") not in ("product", "product_group"):
        return "properties.content_type: must be product or product_group"
    currency = properties.get("currency")
    if currency is not None and not (isinstance(currency, str) and _CURRENCY.match(currency)):
        return "properties.currency: not a valid ISO 4217 currency code"
    if "value" in properties:
        value = properties["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "properties.value: Not a valid number."
        if currency is None:
            return "properties.currency: required with value"
    return None


def make_app(fake: TikTokFake | None = None) -> web.Application:
    """The TikTok fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or TikTokFake()
    app = fake_app(FAKE_KEY, fake, client_max_size=8 * 1024**2)

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        body = body_json(await request.read())
        entry: dict[str, Any] = {
            "method": request.method, "path": request.path, "body": body,
            "headers": {k.lower(): v for k, v in request.headers.items()},
        }
        response, code = _answer(fake, request, body)
        entry["status"], entry["code"] = response.status, code
        fake.record(entry)
        return response

    app.router.add_post(PREFIX + TRACK_PATH, handle)
    return app


def _answer(fake: TikTokFake, request: web.Request, body: Any
            ) -> tuple[web.Response, int | None]:
    reply = fake.next_reply()
    if reply is not None and not reply.passes:
        return reply.response(), None
    request_id = f"fake-{len(fake.received) + 1:06d}"
    try:
        fake.check_token(request.headers.get("Access-Token"))
        fake.throttle()
        fake.track(body)
    except Refused as refused:
        return web.json_response({**refused.body, "request_id": request_id,
                                  "data": {}}), refused.body["code"]
    return web.json_response({"code": 0, "message": "OK", "request_id": request_id,
                              "data": {}}), 0


DEMO_TOKEN = "demo-tiktok-token"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's TikTok destination (the register_demo_destinations hook)."""
    fake = TikTokFake(access_token=DEMO_TOKEN)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        names = ", ".join(str(e.get("event")) for e in body.get("data") or []
                          if isinstance(e, dict))
        return f"POST {TRACK_PATH} [{names}] -> code {entry.get('code')}"

    def state() -> list[str]:
        events = server.call(lambda: list(fake.events))
        counts: dict[str, int] = {}
        for event in events:
            counts[event["event"]] = counts.get(event["event"], 0) + 1
        return [f"{n} {name}" for name, n in sorted(counts.items())]

    return DemoDestination(
        "tiktok",
        {"plugin": "tiktok",
         "settings": {"base_url": server.url + PREFIX, "access_token": DEMO_TOKEN,
                      "event_source_id": DEFAULT_PIXEL},
         # The demo's anonymous visitor has nothing TikTok matches on (no email, no click
         # id): skipped by the rule instead of dead-lettered.
         "rules": {"only_identified": True}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the TikTok Events API contract fake.", 8094)
    parser.add_argument("--access-token", default=DEFAULT_TOKEN)
    parser.add_argument("--pixel", default=DEFAULT_PIXEL)
    args = parser.parse_args(argv)
    fake = TikTokFake(access_token=args.access_token, pixels={args.pixel},
                      latency=args.latency)
    run_fake(make_app(fake), args, f"TikTok fake on {{url}}{PREFIX} (token "
                                   f"{args.access_token}, pixel {args.pixel}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()
