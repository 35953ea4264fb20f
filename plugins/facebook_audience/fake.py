"""Contract fake of Meta's Custom Audience user uploads: a real HTTP server enforcing the API.

- `POST|DELETE /{version}/{audience_id}/users?access_token=...&appsecret_proof=...
  [&appsecret_time=...]`: an unknown token is error 190 (OAuthException, HTTP 400); when the
  fake has an app secret, a missing or wrong `appsecret_proof` is error 100, and so is a
  time-bound proof whose `appsecret_time` is more than 5 minutes from the fake's clock (Meta
  considers those expired); an unknown audience is error 100/33.
- The body is `{session: {session_id, batch_seq, last_batch_flag, estimated_num_total},
  payload: {schema: [...], data: [[...]]}}`: known schema fields, no repeats, every row as
  long as the schema, at most 10,000 rows, hashed fields 64 lower-hex characters (or ""),
  MADID / EXTERN_ID never hashed-looking; anything else is error 100 naming the rule.
- A session whose last batch arrived takes no new batch (error 100); the same batch sent again
  is accepted (a retry) and counted in `replays`.
- Success: `{audience_id, session_id, num_received, num_invalid_entries,
  invalid_entry_samples}`; POST adds rows to the audience, DELETE removes the members sharing
  any identifying value (EMAIL, PHONE, MADID, EXTERN_ID) with a row, or equal to it.
- Errors are Graph's `{error: {message, type, code, error_subcode, fbtrace_id}}`; tests
  script any of them with `fail_with_code`.
- `GET /_fake/state`: audiences with their member rows, sessions, error counts.

    python -m crossdock.plugins.facebook_audience.fake --port 8095 --audience 6000000000001 \
        --token EAAB-test [--app-secret s3cret]
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crossdock.plugins.facebook_audience.const import APPSECRET_TIME_WINDOW, MAX_USERS_PER_REQUEST
from crossdock.plugins.facebook_audience.destination import appsecret_proof
from crossdock.plugins.facebook_audience.normalize import SCHEMA_FIELDS, UNHASHED_FIELDS
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import FakeState, Reply, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[FacebookAudienceFake] = web.AppKey("facebook_audience_fake")
DEFAULT_AUDIENCE = "6000000000001"
DEFAULT_TOKEN = "EAAB-fake-token"
IDENTIFYING = ("EMAIL", "PHONE", "MADID", "EXTERN_ID")
_HASH = re.compile(r"^[0-9a-f]{64}$")

Row = tuple[tuple[str, str], ...]


class GraphError(Exception):
    def __init__(self, code: int, message: str, status: int = 400, subcode: int | None = None,
                 kind: str = "OAuthException") -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.subcode, self.kind = (
            code, message, status, subcode, kind)


def graph_error_body(code: int, message: str, subcode: int | None = None,
                     kind: str = "OAuthException") -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code,
                             "fbtrace_id": "AFakeTraceId"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@dataclass
class _Session:
    audience_id: str
    method: str
    seen: set[int] = field(default_factory=set)
    closed: bool = False
    estimated_num_total: int | None = None


@dataclass
class FacebookAudienceFake(FakeState):
    """What the fake knows (tokens, audiences) and holds (each audience's member rows)."""

    tokens: set[str] = field(default_factory=lambda: {DEFAULT_TOKEN})
    app_secret: str | None = None
    audiences: dict[str, set[Row]] = field(
        default_factory=lambda: {DEFAULT_AUDIENCE: set()})
    sessions: dict[int, _Session] = field(default_factory=dict)
    replays: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    #: Meta's clock, for appsecret_time (tests step it instead of sleeping)
    clock: Callable[[], float] = time.time

    def fail_with_code(self, code: int, message: str = "scripted", status: int = 400,
                       subcode: int | None = None, retry_after: str | None = None) -> None:
        """Answer the next request with a Graph error of this code."""
        headers = {"content-type": "application/json"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        self.script([Reply(status, json.dumps(graph_error_body(code, message, subcode)),
                           headers)])

    def members(self, audience_id: str = DEFAULT_AUDIENCE) -> list[dict[str, str]]:
        """The audience's member rows as {field: value}, sorted."""
        with self._lock:
            rows = sorted(self.audiences.get(audience_id, set()))
        return [dict(r) for r in rows]

    def member_values(self, schema_field: str, audience_id: str = DEFAULT_AUDIENCE) -> set[str]:
        """One field's values over the audience's members (e.g. every member's EMAIL hash)."""
        return {m[schema_field] for m in self.members(audience_id) if m.get(schema_field)}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            for rows in self.audiences.values():
                rows.clear()
            self.sessions.clear()
            self.errors.clear()
            self.replays = 0

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap["audiences"] = {a: [dict(r) for r in sorted(rows)]
                                 for a, rows in self.audiences.items()}
            snap["sessions"] = {str(sid): {"audience_id": s.audience_id, "method": s.method,
                                           "batches": sorted(s.seen), "closed": s.closed,
                                           "estimated_num_total": s.estimated_num_total}
                                for sid, s in self.sessions.items()}
            snap["replays"] = self.replays
            snap["errors"] = {str(k): v for k, v in self.errors.items()}
        return snap

    # -- the API ---------------------------------------------------------------------------

    def check_auth(self, query: Any) -> None:
        token = query.get("access_token", "")
        if not any(hmac.compare_digest(token, known) for known in self.tokens):
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
        if self.app_secret is not None:
            proof = query.get("appsecret_proof")
            if not proof:
                raise GraphError(100, "API calls from the server require an appsecret_proof "
                                      "argument", kind="GraphMethodException")
            signed_at = query.get("appsecret_time")
            try:
                at = None if signed_at is None else int(signed_at)
            except ValueError:
                raise GraphError(100, "Invalid appsecret_time provided in the API argument",
                                 kind="GraphMethodException") from None
            if not hmac.compare_digest(proof, appsecret_proof(self.app_secret, token, at)):
                raise GraphError(100, "Invalid appsecret_proof provided in the API argument",
                                 kind="GraphMethodException")
            if at is not None and abs(self.clock() - at) > APPSECRET_TIME_WINDOW:
                raise GraphError(100, "Expired appsecret_proof: appsecret_time is more than "
                                      "5 minutes away", kind="GraphMethodException")

    def apply(self, method: str, audience_id: str, body: Any) -> dict[str, Any]:
        if audience_id not in self.audiences:
            raise GraphError(100, f"Unsupported {method.lower()} request. Object with ID "
                                  f"'{audience_id}' does not exist", subcode=33,
                             kind="GraphMethodException")
        session, schema, data = _parse_body(body)
        rows = [tuple(zip(schema, row, strict=True)) for row in data]
        sid = session["session_id"]
        with self._lock:
            known = self.sessions.get(sid)
            if known is None:
                known = self.sessions[sid] = _Session(audience_id, method)
            elif known.audience_id != audience_id or known.method != method:
                raise GraphError(100, "session_id belongs to another upload")
            seq = session["batch_seq"]
            if seq in known.seen:
                self.replays += 1
            elif known.closed:
                raise GraphError(100, "The session has already finished: its last batch "
                                      "was received")
            known.seen.add(seq)
            known.closed = known.closed or session["last_batch_flag"]
            known.estimated_num_total = session.get("estimated_num_total")
            members = self.audiences[audience_id]
            given = {tuple((f, v) for f, v in row if v) for row in rows}
            if method == "POST":
                members.update(given)
            else:
                # One pass over the members, whatever the number of rows removed.
                ids = {(f, v) for row in given for f, v in row if f in IDENTIFYING}
                members.difference_update(
                    {m for m in members if m in given or not ids.isdisjoint(m)})
        return {"audience_id": audience_id, "session_id": str(sid), "num_received": len(rows),
                "num_invalid_entries": 0, "invalid_entry_samples": {}}


def _parse_body(body: Any) -> tuple[dict[str, Any], list[str], list[list[str]]]:
    """The session, schema and data of an upload, or GraphError 100 naming the broken rule."""
    def bad(message: str) -> GraphError:
        return GraphError(100, f"(#100) {message}", kind="OAuthException")

    if not isinstance(body, dict):
        raise bad("the body must be a JSON object with session and payload")
    session, payload = body.get("session"), body.get("payload")
    if not isinstance(session, dict):
        raise bad("session is required: {session_id, batch_seq, last_batch_flag}")
    for name in ("session_id", "batch_seq"):
        value = session.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(f"session.{name} must be a positive integer")
    if not isinstance(session.get("last_batch_flag"), bool):
        raise bad("session.last_batch_flag must be true or false")
    total = session.get("estimated_num_total")
    if total is not None and (not isinstance(total, int) or total < 0):
        raise bad("session.estimated_num_total must be a non-negative integer")
    if not isinstance(payload, dict):
        raise bad("payload is required: {schema, data}")
    schema, data = payload.get("schema"), payload.get("data")
    if not isinstance(schema, list) or not schema or not all(isinstance(f, str) for f in schema):
        raise bad("payload.schema must be a non-empty list of field names")
    unknown = [f for f in schema if f not in SCHEMA_FIELDS]
    if unknown:
        raise bad(f"payload.schema: unknown field(s) {', '.join(unknown)}")
    if len(set(schema)) != len(schema):
        raise bad("payload.schema must not repeat a field")
    if not isinstance(data, list) or not data:
        raise bad("payload.data must be a non-empty list of rows")
    if len(data) > MAX_USERS_PER_REQUEST:
        raise bad(f"payload.data: at most {MAX_USERS_PER_REQUEST} users per request, "
                  f"got {len(data)}")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(schema):
            raise bad(f"payload.data[{i}]: a row must be a list of {len(schema)} values "
                      "(one per schema field)")
        for f, value in zip(schema, row, strict=True):
            if not isinstance(value, str):
                raise bad(f"payload.data[{i}] {f}: values must be strings")
            if not value:
                continue
            hashed = bool(_HASH.match(value))
            if f in UNHASHED_FIELDS and hashed:
                raise bad(f"payload.data[{i}] {f}: must not be hashed")
            if f not in UNHASHED_FIELDS and not hashed:
                raise bad(f"payload.data[{i}] {f}: must be SHA-256 hashed (64 lower-case hex)")
    return session, schema, data


def make_app(fake: FacebookAudienceFake | None = None) -> web.Application:
    """The Custom Audience users endpoint as an aiohttp application; state in `app[FAKE_KEY]`."""
    fake = fake or FacebookAudienceFake()
    app = fake_app(FAKE_KEY, fake, client_max_size=64 * 1024 * 1024)

    async def users(request: web.Request) -> web.Response:
        await fake.delay()
        audience_id = request.match_info["audience_id"]
        raw = await request.read()
        try:
            fake.check_auth(request.query)
            reply = fake.next_reply()
            if reply is not None and not reply.passes:
                return reply.response()
            try:
                body = json.loads(raw)
            except ValueError:
                raise GraphError(100, "(#100) the body must be JSON") from None
            result = fake.apply(request.method, audience_id, body)
        except GraphError as exc:
            with fake._lock:
                fake.errors[exc.code] = fake.errors.get(exc.code, 0) + 1
            return web.json_response(
                graph_error_body(exc.code, exc.message, exc.subcode, exc.kind),
                status=exc.status)
        fake.record({"method": request.method, "audience_id": audience_id,
                     "session": body["session"], "rows": len(body["payload"]["data"])})
        return web.json_response(result)

    app.router.add_route("POST", r"/{version:v\d+\.\d+}/{audience_id}/users", users)
    app.router.add_route("DELETE", r"/{version:v\d+\.\d+}/{audience_id}/users", users)
    return app


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Custom Audience: people who enter the demo audience are added, people who
    leave are removed, every value hashed."""
    fake = FacebookAudienceFake()
    app = make_app(fake)
    # The fake records no rows; the demo shows the hashed rows each upload carried.
    uploads: list[dict[str, Any]] = []

    @web.middleware
    async def keep_uploads(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith("/users"):
            try:
                payload = json.loads(await request.read()).get("payload") or {}
            except (ValueError, AttributeError):
                payload = {}
            uploads.append({"method": request.method, "status": response.status,
                            "schema": payload.get("schema") or [],
                            "data": payload.get("data") or []})
        return response

    app.middlewares.append(keep_uploads)
    server = context.serve(app)

    def describe(entry: dict[str, Any]) -> str:
        schema = entry["schema"]
        rows = [dict(zip(schema, row, strict=False)) for row in entry["data"]
                if isinstance(row, list)]
        sent = [f for f in schema if any(row.get(f) for row in rows)]
        emails = ", ".join(str(row["EMAIL"])[:10] + "…" for row in rows if row.get("EMAIL"))
        what = "add" if entry["method"] == "POST" else "remove"
        people = "person" if len(rows) == 1 else "people"
        return (f"{entry['method']} {what} {len(rows)} {people} ({', '.join(sent)} hashed): "
                f"{emails} -> {entry['status']}")

    def state() -> list[str]:
        emails = sorted(server.call(fake.member_values, "EMAIL"))
        return [f"audience {DEFAULT_AUDIENCE} holds {len(emails)}: EMAIL "
                + ", ".join(e[:10] + "…" for e in emails)]

    return DemoDestination(
        "fb-high-value",
        {"plugin": "facebook_audience",
         "settings": {"audience_id": DEFAULT_AUDIENCE, "access_token": DEFAULT_TOKEN,
                      "graph_url": server.url},
         # Only membership events belong in a Custom Audience (facebook_audience.md).
         "filter": {"events": {"allow": ["audience_entered", "audience_exited"]}}},
        lambda: list(server.call(lambda: list(uploads))),
        describe,
        audience=True,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Facebook Custom Audience contract fake.", 8095)
    parser.add_argument("--audience", action="append", help=f"default {DEFAULT_AUDIENCE}")
    parser.add_argument("--token", action="append", help=f"default {DEFAULT_TOKEN}")
    parser.add_argument("--app-secret", default=None)
    args = parser.parse_args(argv)
    fake = FacebookAudienceFake(
        latency=args.latency, tokens=set(args.token or [DEFAULT_TOKEN]),
        app_secret=args.app_secret,
        audiences={a: set() for a in args.audience or [DEFAULT_AUDIENCE]})
    run_fake(make_app(fake), args, "facebook_audience fake on {url} (audiences "
             f"{', '.join(sorted(fake.audiences))}; GET /_fake/state)")


if __name__ == "__main__":
    main()
