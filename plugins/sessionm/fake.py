"""Contract fake of the SessionM app API: a real HTTP server that refuses what SessionM refuses.

    PUT  /priv/v1/apps/{api_key}/external/users/{external_id}          upsert a user
    GET  /priv/v1/apps/{api_key}/external/users/{external_id}          read a user
    POST /priv/v1/apps/{api_key}/external/users/{external_id}/events   store an event

Replies are SessionM's: HTTP 200 with `{"status": "ok", ...}`, or HTTP 200 with
`{"status": "error", "errors": {"code": ..., "message": ...}}`. The contract it enforces:
- Basic auth base64(api_key:api_secret): no or unreadable credentials -> HTTP 401; a key or
  secret that does not match the app (or a path naming another app) -> INVALID_API_KEY;
- a body that is not a JSON object, or lacks `user` / `event` -> MISSING_DATA;
- only defined events: any other name -> VALIDATION;
- more than 10 event attributes, more than 200 user attributes, or any attribute / user field
  value that is not a string -> VALIDATION;
- an event for a user it does not know and that carries no `user` block -> USER_NOT_FOUND.
Scripted replies (`fake.script([500])`, shared with every fake) and scripted SessionM error
codes (`fake.script_errors(["INTERNAL_SERVER_ERROR"])`) answer before anything is stored.

    python -m crossdock.plugins.sessionm.fake --port 8097 --api-key demo --api-secret s3cret \
        --events "Order Completed,Product Viewed"
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crossdock.plugins.sessionm.const import (
    API_PREFIX,
    CODE_INTERNAL_SERVER_ERROR,
    CODE_INVALID_API_KEY,
    CODE_MISSING_DATA,
    CODE_USER_NOT_FOUND,
    CODE_VALIDATION,
    EVENT_TYPE_CUSTOM,
    EVENT_TYPE_SCREEN_VIEW,
    MAX_EVENT_ATTRIBUTES,
    MAX_USER_ATTRIBUTES,
    STANDARD_USER_FIELDS,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import FakeState, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[SessionMFake] = web.AppKey("sessionm_fake")
_EVENT_TYPES = frozenset({EVENT_TYPE_CUSTOM, EVENT_TYPE_SCREEN_VIEW})


class SessionMRefusal(Exception):
    """A request SessionM answers with `{"status": "error"}`."""

    def __init__(self, code: str, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status

    def response(self) -> web.Response:
        return error_response(self.code, self.message, self.http_status)


def error_response(code: str, message: str, http_status: int = 200) -> web.Response:
    return web.json_response(
        {"status": "error", "errors": {"code": code, "message": message}}, status=http_status
    )


@dataclass
class SessionMFake(FakeState):
    """What the SessionM fake holds: one app's credentials, its defined events, its users, the
    events it stored, and every request it answered (`received`, refusals included)."""

    api_key: str = "test-key"
    api_secret: str = "test-secret"
    defined_events: set[str] = field(default_factory=set)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    _error_codes: deque[str] = field(default_factory=deque, repr=False)

    def script_errors(self, codes: list[str]) -> None:
        """Answer the next requests with HTTP 200 `{"status": "error"}` and these codes."""
        with self._lock:
            self._error_codes.extend(codes)

    def next_error(self) -> str | None:
        with self._lock:
            return self._error_codes.popleft() if self._error_codes else None

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.users.clear()
            self.events.clear()
            self._error_codes.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap["users"] = json.loads(json.dumps(self.users))
            snap["events"] = list(self.events)
        return snap

    def refusals(self) -> list[str]:
        """The error code of every refused request, in arrival order."""
        return [r["code"] for r in self.received if r.get("code")]

    # -- the contract ------------------------------------------------------------------

    def check_auth(self, api_key: str, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Basic "):
            raise SessionMRefusal(CODE_INVALID_API_KEY, "Basic authentication required", 401)
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SessionMRefusal(CODE_INVALID_API_KEY, "unreadable Basic credentials",
                                  401) from exc
        key, _, secret = decoded.partition(":")
        if key != self.api_key or secret != self.api_secret or api_key != self.api_key:
            raise SessionMRefusal(CODE_INVALID_API_KEY, "api key or secret is not valid")

    def upsert_user(self, external_id: str, user: Any) -> dict[str, Any]:
        if not isinstance(user, dict):
            raise SessionMRefusal(CODE_MISSING_DATA, "user: must be an object")
        fields = {k: v for k, v in user.items()
                  if k not in ("user_profile", "identifiers", "external_id")}
        for name in sorted(STANDARD_USER_FIELDS & fields.keys()):
            if not isinstance(fields[name], str):
                raise SessionMRefusal(CODE_VALIDATION, f"user.{name}: must be a string")
        profile = user.get("user_profile") or {}
        if not isinstance(profile, dict):
            raise SessionMRefusal(CODE_VALIDATION, "user.user_profile: must be an object")
        _strings_only(profile, "user.user_profile")
        identifiers = user.get("identifiers") or []
        if not isinstance(identifiers, list) or not all(
            isinstance(i, dict) and isinstance(i.get("external_id_type"), str)
            and isinstance(i.get("external_id"), str) for i in identifiers
        ):
            raise SessionMRefusal(CODE_VALIDATION, "user.identifiers: must be a list of "
                                  "{external_id_type, external_id} strings")
        with self._lock:
            known = self.users.get(external_id)
            merged = {**(known["user_profile"] if known else {}), **profile}
            if len(merged) > MAX_USER_ATTRIBUTES:
                raise SessionMRefusal(CODE_VALIDATION, f"user.user_profile: at most "
                                      f"{MAX_USER_ATTRIBUTES} attributes, got {len(merged)}")
            stored = self.users.setdefault(external_id, {
                "id": f"sm-{len(self.users) + 1}", "external_id": external_id,
                "user_profile": {}, "identifiers": {},
            })
            stored.update(fields)
            stored["user_profile"] = merged
            stored["identifiers"].update(
                {i["external_id_type"]: i["external_id"] for i in identifiers})
            return dict(stored)

    def store_event(self, external_id: str, body: dict[str, Any]) -> dict[str, Any]:
        event = body.get("event")
        if not isinstance(event, dict):
            raise SessionMRefusal(CODE_MISSING_DATA, "event: must be an object")
        name = event.get("name")
        if not isinstance(name, str) or not name:
            raise SessionMRefusal(CODE_MISSING_DATA, "event.name: is required")
        if name not in self.defined_events:
            raise SessionMRefusal(CODE_VALIDATION,
                                  f"event.name: {name!r} is not defined for this app")
        if event.get("type") not in _EVENT_TYPES:
            raise SessionMRefusal(CODE_VALIDATION,
                                  f"event.type: must be one of {', '.join(sorted(_EVENT_TYPES))}")
        attributes = event.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise SessionMRefusal(CODE_VALIDATION, "event.attributes: must be an object")
        if len(attributes) > MAX_EVENT_ATTRIBUTES:
            raise SessionMRefusal(CODE_VALIDATION, f"event.attributes: at most "
                                  f"{MAX_EVENT_ATTRIBUTES}, got {len(attributes)}")
        _strings_only(attributes, "event.attributes")
        if "user" in body:
            user = self.upsert_user(external_id, body["user"])
        else:
            with self._lock:
                if external_id not in self.users:
                    raise SessionMRefusal(CODE_USER_NOT_FOUND,
                                          f"no user with external id {external_id!r}")
                user = self.users[external_id]
        stored = {"id": f"ev-{len(self.events) + 1}", "user_id": user["id"],
                  "external_id": external_id, **event}
        with self._lock:
            self.events.append(stored)
        return stored


def _strings_only(values: dict[str, Any], where: str) -> None:
    for key, value in values.items():
        if not isinstance(value, str):
            raise SessionMRefusal(CODE_VALIDATION, f"{where}.{key}: must be a string, got "
                                  f"{type(value).__name__}")


def make_app(
    api_key: str = "test-key",
    api_secret: str = "test-secret",
    defined_events: set[str] | None = None,
    *,
    fake: SessionMFake | None = None,
    latency: float = 0.0,
) -> web.Application:
    """The SessionM fake as an aiohttp application; its state is `app[FAKE_KEY]`. Pass `fake`
    to share state with the caller; otherwise one is made from the other arguments."""
    fake = fake or SessionMFake(api_key=api_key, api_secret=api_secret,
                                defined_events=set(defined_events or ()), latency=latency)
    app = fake_app(FAKE_KEY, fake)
    base = API_PREFIX.format(api_key="{api_key}") + "/external/users/{external_id}"

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        raw = await request.read()
        entry: dict[str, Any] = {
            "method": request.method, "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body_json(raw),
        }
        response, code = _answer(fake, request, entry["body"])
        entry["status"] = response.status
        entry["code"] = code
        fake.record(entry)
        return response

    app.router.add_route("PUT", base, handle)
    app.router.add_route("GET", base, handle)
    app.router.add_route("POST", base + "/events", handle)
    return app


def _answer(fake: SessionMFake, request: web.Request, body: Any
            ) -> tuple[web.Response, str | None]:
    """The reply, and its SessionM error code (None when the request was accepted; scripted
    HTTP replies carry their status as the code)."""
    try:
        fake.check_auth(request.match_info["api_key"], request.headers.get("Authorization"))
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.response(), f"HTTP {reply.status}"
        code = fake.next_error()
        if code is not None:
            message = ("internal server error, try again" if code == CODE_INTERNAL_SERVER_ERROR
                       else "scripted")
            return error_response(code, message), code
        external_id = request.match_info["external_id"]
        if request.method == "GET":
            with fake._lock:
                user = fake.users.get(external_id)
            if user is None:
                raise SessionMRefusal(CODE_USER_NOT_FOUND,
                                      f"no user with external id {external_id!r}")
            return web.json_response({"status": "ok", "user": user}), None
        if not isinstance(body, dict):
            raise SessionMRefusal(CODE_MISSING_DATA, "the body must be a JSON object")
        if request.method == "PUT":
            if "user" not in body:
                raise SessionMRefusal(CODE_MISSING_DATA, "user: is required")
            user = fake.upsert_user(external_id, body["user"])
            return web.json_response({"status": "ok", "user": user}), None
        event = fake.store_event(external_id, body)
        return web.json_response({"status": "ok", "event": event}), None
    except SessionMRefusal as refusal:
        return refusal.response(), refusal.code


DEMO_EVENTS = frozenset({"Order Completed", "Product Viewed"})


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's SessionM app: the two demo events, with a few attributes, of known users."""
    fake = SessionMFake(api_key="demo-app", api_secret="demo-secret",
                        defined_events=set(DEMO_EVENTS))
    server = context.serve(make_app(fake=fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") or {}
        what = (body.get("event") or {}).get("name") if isinstance(body, dict) else None
        return (f"{entry['method']} {entry['path'].split('/external/')[-1]} "
                f"{what or ''} -> {entry.get('code') or 'ok'}")

    return DemoDestination(
        "sessionm",
        {"plugin": "sessionm",
         "settings": {"host": server.url, "api_key": "demo-app", "api_secret": "demo-secret"},
         "filter": {"events": {"allow": sorted(DEMO_EVENTS)},
                    "event_attributes": {"allow": ["sku", "price", "currency"]},
                    "user_attributes": {"allow": ["firstName", "lastName", "plan"]},
                    "identities": {"allow": ["email"]}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the SessionM contract fake.", 8097)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--api-secret", default="test-secret")
    parser.add_argument("--events", default=",".join(sorted(DEMO_EVENTS)),
                        help="comma-separated names of the events defined in the app")
    args = parser.parse_args(argv)
    events = {e.strip() for e in args.events.split(",") if e.strip()}
    app = make_app(args.api_key, args.api_secret, events, latency=args.latency)
    run_fake(app, args, f"SessionM fake on {{url}}/ (app {args.api_key}; GET /_fake/received)")


if __name__ == "__main__":
    main()
