"""The HTTP collector: Segment-compatible endpoints and the user API, on FastAPI.

    app = make_app(loaded, pipeline)          # uvicorn.run(app, host=..., port=...)

Every accepting endpoint answers `{"response": {"status": "queued", ...}}` only after the
pipeline's transaction committed: the messages, their profile changes, their outbox rows and
the request's `x-request-id` are durable together. Errors are
`{"response": {"status": "error", "message": "field: rule", "errors": [...]}}` with a 4xx code:
400 malformed body, 401 credentials, 404 unknown account, 413 too large (on the wire or
inflated), 415 an unsupported Content-Encoding, 422 invalid fields, 429 rate limited (a key
over its allowance, or an address past its failed authentications; with Retry-After).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlite_utils import Database
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossdock import __version__
from crossdock.collector import browser
from crossdock.collector.auth import Authenticator, AuthError, Credential
from crossdock.collector.body import parse_json, read_body
from crossdock.collector.checkpoint import WalCheckpointer
from crossdock.collector.cors import CorsHeaders, OriginPolicy
from crossdock.collector.errors import ApiError, error_response
from crossdock.collector.group import AcceptGroups, Outcome
from crossdock.collector.ratelimit import RequestLimiter, client_key, retry_after_header
from crossdock.collector.timestamps import Stamper
from crossdock.collector.user_api import ErrorResponse, EventRequest, Queued, UserUpdate
from crossdock.config import LoadedConfig
from crossdock.dedup import Dedup, request_key
from crossdock.json_shape import shape_problems
from crossdock.metrics import Metrics, outbox_samples, profile_store_samples
from crossdock.models import (
    AliasMessage,
    GroupMessage,
    IdentifyMessage,
    PageMessage,
    ScreenMessage,
    TrackMessage,
    format_time,
    validation_problems,
)
from crossdock.outbox import is_sqlite
from crossdock.outbox.base import shared_sql
from crossdock.pipeline import AcceptResult, Pipeline
from crossdock.profiles.store import ProfileStore

log = logging.getLogger("crossdock.collector")

MAX_BATCH = 500
MAX_REQUEST_ID = 200
SEGMENT_TYPES: dict[str, type[BaseModel]] = {
    "track": TrackMessage, "identify": IdentifyMessage, "page": PageMessage,
    "screen": ScreenMessage, "alias": AliasMessage, "group": GroupMessage,
}


#: one request's accept: its result, None for a request id seen before, or its error
Accepted = AcceptResult | None | BaseException


@dataclass(frozen=True, slots=True)
class Ingest:
    """One tracking request's messages, for its accept group."""

    credential: Credential
    request_id: str | None
    raws: list[Any]
    batch: bool


class Collector:
    """The collector's state: credentials, rate limits, metrics and the pipeline."""

    def __init__(self, loaded: LoadedConfig, pipeline: Pipeline[ProfileStore], *,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 counters: Metrics | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.config.collector
        self.pipeline = pipeline
        self.outbox = pipeline.outbox
        self.clock = clock
        self.auth = Authenticator(self.config)
        self.origins = OriginPolicy(self.config)
        self.limiter = RequestLimiter(monotonic)
        self.failures = RequestLimiter(monotonic)
        #: its request counters; the daemon's ops listener shows them too
        self.metrics = counters if counters is not None else Metrics()
        self.dedup = Dedup(loaded.config.profiles.dedup_window)
        with self.outbox.transaction() as db:
            Dedup.migrate(db)
        #: the pipeline's profile store, for the user API and the profile gauges
        self.store = pipeline.profiles
        # A SQLite outbox's WAL checkpoints (two fsyncs) run beside the requests, not in the
        # COMMIT of whichever request crossed the threshold (checkpoint.py).
        self.checkpointer = (WalCheckpointer.attach(self.outbox) if is_sqlite(self.outbox)
                             else None)
        self.groups: AcceptGroups[Ingest, JSONResponse] = AcceptGroups(
            self.ingest_group, lambda r: len(r.raws),
            # PostgreSQL without a profile store has no message-id locks to order the
            # outbox's unique inserts by, so each request keeps its own transaction there.
            grouped=is_sqlite(self.outbox) or pipeline.profiles is not None)

    def close(self) -> None:
        """Stop the accept thread and the background checkpoints (the app's shutdown does
        this)."""
        self.groups.close()
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None

    # -- request plumbing ---------------------------------------------------------------

    def authenticate(self, request: Request, check: Callable[[], Credential]) -> Credential:
        """`check()`'s credential, counting its failures against the client's address: past
        `auth_failures_per_minute` every request from there is refused with 429 before its
        key is looked at, so a guessed key right at last tells the guesser nothing sooner."""
        address = client_key(request.client.host if request.client else None)
        per_minute = self.config.auth_failures_per_minute
        wait = self.failures.wait(address, per_minute)
        if wait is not None:
            raise self._rate_limited(wait, f"authorization: more than {per_minute} failed "
                                           "attempts a minute from this address")
        try:
            return check()
        except AuthError as exc:
            self.failures.charge(address, per_minute)
            self.metrics.inc("crossdock_collector_auth_failures_total")
            raise _auth_error(exc) from exc

    def limit(self, credential: Credential) -> None:
        wait = self.limiter.check(credential.key_id, credential.rate_limit_per_minute)
        if wait is not None:
            raise self._rate_limited(wait, f"rate limit: at most "
                                           f"{credential.rate_limit_per_minute} requests a "
                                           "minute for this key")

    def _rate_limited(self, wait: float, why: str) -> ApiError:
        self.metrics.inc("crossdock_collector_rate_limited_total")
        return ApiError(429, f"{why}; retry after the Retry-After seconds",
                        headers={"Retry-After": retry_after_header(wait)})

    async def read_json(self, request: Request) -> Any:
        return parse_json(await read_body(request, self.config.max_body_bytes))

    def received_at(self) -> datetime:
        """Now by the collector's clock: the receivedAt of what arrives now."""
        return datetime.fromtimestamp(self.clock(), UTC)

    @staticmethod
    def request_id(request: Request) -> str | None:
        value = request.headers.get("x-request-id")
        if value is None:
            return None
        value = value.strip()
        if not value or len(value) > MAX_REQUEST_ID:
            raise ApiError(400, f"x-request-id: 1 to {MAX_REQUEST_ID} characters")
        return value

    async def ingest(self, credential: Credential, request_id: str | None,
                     raws: list[Any], *, batch: bool) -> JSONResponse:
        """Accept the messages with the request id, in the transaction of the request's group
        (group.py); answer after its commit."""
        return await self.groups.submit(Ingest(credential, request_id, raws, batch))

    def ingest_group(self, requests: Sequence[Ingest]) -> list[Outcome[JSONResponse]]:
        """Accept the requests' messages in one transaction (group.py); answer each."""
        results = self._accept_group(requests)
        # Woken after the commit: a worker woken inside the group's transaction found no
        # rows yet, or waited on this thread's hold of the outbox.
        self.pipeline.wake({d for r in results if isinstance(r, AcceptResult)
                            for d in r.destinations})
        outcomes: list[Outcome[JSONResponse]] = []
        for request, result in zip(requests, results, strict=True):
            try:
                if isinstance(result, BaseException):
                    raise result
                outcomes.append(Outcome(self._answer(request, result)))
            except Exception as exc:
                outcomes.append(Outcome(error=exc))
        return outcomes

    def _accept_alone(self, request: Ingest) -> Accepted:
        """One request in a transaction of its own: its result, or its error (its changes
        rolled back)."""
        self.metrics.inc("crossdock_collector_accept_transactions_total")
        try:
            with self.outbox.transaction() as tx:
                return self._accept_together(shared_sql(tx), [request],
                                             [self._request_key(request)])[0]
        except Exception as exc:
            return exc

    def _accept_group(self, requests: Sequence[Ingest]) -> list[Accepted]:
        """The whole group in one transaction and ONE `Pipeline.accept_parts` call, each
        request answered from its part. One call, not one per request: the profile store
        reads and writes a call's people with one statement per step whatever their number
        (crossdock.profiles.batch), so eight concurrent /v1/track requests cost one read
        and one write of each profile table, not eight. On PostgreSQL it is also what keeps
        daemons from deadlocking: the store locks what a call touches in one global sorted
        order (crossdock.profiles.store), and a call per request would take a sorted lock set
        per request, two daemons taking theirs in turn. If that call fails (a bug, not a bad
        message: those are answered by index), the group is rolled back and each request is
        accepted in a transaction of its own, so only the failing one fails."""
        if len(requests) == 1:  # nothing to share: no fallback that would run it twice
            return [self._accept_alone(requests[0])]
        keys = [self._request_key(r) for r in requests]
        # A request id twice in one group: the repeat's answer depends on what the first
        # accepted, so it is accepted after the group's commit, alone.
        together: list[int] = []
        later: list[int] = []
        taken: set[str] = set()
        for i, key in enumerate(keys):
            if key is not None and key in taken:
                later.append(i)
                continue
            if key is not None:
                taken.add(key)
            together.append(i)
        results: dict[int, Accepted] = {}
        try:
            self.metrics.inc("crossdock_collector_accept_transactions_total")
            with self.outbox.transaction() as tx:
                shared = self._accept_together(shared_sql(tx), [requests[i] for i in together],
                                               [keys[i] for i in together])
            results.update(zip(together, shared, strict=True))
        except Exception:
            log.exception("accepting %d requests together failed; accepting each alone",
                          len(together))
            self.metrics.inc("crossdock_collector_accept_fallbacks_total")
            later = sorted([*together, *later])
        for i in later:
            results[i] = self._accept_alone(requests[i])
        return [results[i] for i in range(len(requests))]

    def _accept_together(self, db: Database, requests: Sequence[Ingest],
                         keys: Sequence[str | None]) -> list[AcceptResult | None]:
        """The requests' accepts in one `accept_parts` call (None: a request id seen
        before). The request ids' locks come first, in one sorted set, as one request's
        does before its accept's locks."""
        now = self.clock()
        self.dedup.lock(db, [k for k in keys if k is not None])
        fresh = [i for i, key in enumerate(keys)
                 if key is None or not self.dedup.seen(db, key, now)]
        parts = self.pipeline.accept_parts([requests[i].raws for i in fresh], wake=False)
        results: list[AcceptResult | None] = [None] * len(requests)
        for i, result in zip(fresh, parts, strict=True):
            key = keys[i]
            if key is not None and (result.accepted or result.duplicates):
                self.dedup.remember(db, key, now)
            results[i] = result
        return results

    @staticmethod
    def _request_key(request: Ingest) -> str | None:
        return (request_key(request.credential.key_id, request.request_id)
                if request.request_id else None)

    def _answer(self, request: Ingest, result: AcceptResult | None) -> JSONResponse:
        if result is None:
            self.metrics.inc("crossdock_collector_duplicate_requests_total")
            return JSONResponse({"response": {"status": "queued", "accepted": 0,
                                              "duplicates": len(request.raws), "errors": []}})
        batch = request.batch
        self.metrics.inc("crossdock_collector_messages_total", len(result.accepted),
                         outcome="accepted")
        self.metrics.inc("crossdock_collector_messages_total", len(result.duplicates),
                         outcome="duplicate")
        self.metrics.inc("crossdock_collector_messages_total", len(result.errors),
                         outcome="bad")
        errors = [{"index": index, "problems": problems} for index, problems in result.errors]
        if errors and not result.accepted and not result.duplicates:
            if batch:
                raise ApiError(422, "batch: no message was valid; see errors by index",
                               errors=errors)
            raise ApiError(422, "; ".join(result.errors[0][1]))
        return JSONResponse({"response": {
            "status": "queued", "accepted": len(result.accepted),
            "duplicates": len(result.duplicates), "errors": errors,
        }})

    # -- endpoints ----------------------------------------------------------------------

    async def sender(self, request: Request) -> tuple[Credential, str | None, Any]:
        """Who sends a tracking request, its x-request-id and its JSON body. The write key
        comes from the Authorization header, checked before the body is read; without one,
        from the body's `writeKey` (analytics.js, crossdock.js) or the query's (RudderStack's
        beacons). A browser's request must come from an origin its key lists (cors.py)."""
        header = request.headers.get("authorization")
        credential = self.auth_write_key(request) if header is not None else None
        if credential is not None:
            self.admit(credential, request)
        request_id = self.request_id(request)
        body = await self.read_json(request)
        if credential is None:
            in_body = body.get("writeKey") if isinstance(body, dict) else None
            credential = self.auth_write_key(request, in_body if isinstance(in_body, str)
                                             else request.query_params.get("writeKey"))
            self.admit(credential, request)
        return credential, request_id, body

    def admit(self, credential: Credential, request: Request) -> None:
        """The origin check (403), then the key's rate limit (429)."""
        self.origins.check(credential.key_id, request.headers.get("origin"))
        self.limit(credential)

    async def segment(self, kind: str, request: Request) -> Response:
        credential, request_id, body = await self.sender(request)
        if not isinstance(body, dict):
            raise ApiError(400, f"body: must be a JSON object, got {_json_type(body)}")
        message = Stamper(self.received_at())({**body, "type": kind})
        return await self.ingest(credential, request_id, [message], batch=False)

    async def batch(self, request: Request) -> Response:
        credential, request_id, body = await self.sender(request)
        if not isinstance(body, dict):
            raise ApiError(400, f"body: must be a JSON object, got {_json_type(body)}")
        items = body.get("batch")
        if not isinstance(items, list):
            raise ApiError(422, "batch: is required, a list of messages")
        if not items:
            raise ApiError(422, "batch: must hold at least one message")
        if len(items) > MAX_BATCH:
            raise ApiError(413, f"batch: at most {MAX_BATCH} messages, got {len(items)}")
        shared = body.get("context")
        shared_context: dict[str, Any] = shared if isinstance(shared, dict) else {}
        stamp = Stamper(self.received_at(), body.get("sentAt"))
        raws: list[Any] = []
        for item in items:
            if isinstance(item, dict) and shared_context:
                mine = item.get("context")
                own: dict[str, Any] = mine if isinstance(mine, dict) else {}
                item = {**item, "context": {**shared_context, **own}}
            raws.append(stamp(item))
        return await self.ingest(credential, request_id, raws, batch=True)

    async def account(self, account: str, model: type[UserUpdate] | type[EventRequest],
                      request: Request) -> Response:
        credential = self.authenticate(
            request, lambda: self.auth.account(account, request.headers.get("authorization")))
        self.limit(credential)
        request_id = self.request_id(request)
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, f"body: must be a JSON object, got {_json_type(body)}")
        # Checked here, not only when the message is parsed, to name the body's own fields.
        problems = shape_problems(body)
        if problems:
            raise ApiError(422, "; ".join(problems), errors=[{"index": 0, "problems": problems}])
        try:
            parsed = model.model_validate(body)
        except ValidationError as exc:
            problems = validation_problems(exc)
            raise ApiError(422, "; ".join(problems),
                           errors=[{"index": 0, "problems": problems}]) from exc
        message = parsed.to_message(account, format_time(self.clock()))
        return await self.ingest(credential, request_id, [message], batch=False)

    def auth_write_key(self, request: Request, fallback: str | None = None) -> Credential:
        return self.authenticate(
            request,
            lambda: self.auth.write_key(request.headers.get("authorization"), fallback))

    def browser_source(self, request: Request, write_key: str | None) -> tuple[Credential, str]:
        """The caller of a browser SDK's settings request (the write key in its path or
        query, or its Authorization header), checked as a tracking request's is; and the
        collector's URL for the page to send to."""
        credential = self.auth_write_key(request, write_key)
        self.origins.check(credential.key_id, request.headers.get("origin"))
        return credential, self.config.public_url or str(request.base_url).rstrip("/")

    def healthz(self) -> JSONResponse:
        try:
            self.outbox.health()
        except Exception as exc:  # the answer is the health report itself
            return JSONResponse({"status": "error", "message": f"outbox: {exc}"},
                                status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    def metrics_text(self) -> str:
        return self.metrics.render([*outbox_samples(self.outbox.counts(), time.time()),
                                    *profile_store_samples(self.pipeline)])


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _auth_error(exc: AuthError) -> ApiError:
    headers = {"WWW-Authenticate": exc.challenge} if exc.status == 401 else {}
    return ApiError(exc.status, exc.message, headers=headers)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "malformed body", 401: "missing or wrong credentials", 413: "body too large",
        415: "unsupported Content-Encoding", 422: "invalid fields",
        429: "rate limited (see Retry-After)",
    }.items()
}
#: a tracking endpoint's refusals: a web page's origin its write key does not list, too
_TRACKING_ERRORS = {**_ERRORS, **browser.ORIGIN_REFUSED}


def _body(ref: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}}


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    models: tuple[type[BaseModel], ...] = (*SEGMENT_TYPES.values(), UserUpdate, EventRequest)
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["Batch"] = {
        "type": "object", "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {
                "oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"}
                          for m in SEGMENT_TYPES.values()],
            }},
            "context": {"type": "object", "description": "merged into every message's"},
        },
    }
    return schemas


class CountRequests:
    """Counts each answered request by route and status for /metrics. A plain ASGI
    middleware: Starlette's BaseHTTPMiddleware (`@app.middleware("http")`) streams every body
    through an extra task and queue, which costs the event loop more than the request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Counted as the answer starts, as call_next returning did before.
                path = getattr(scope.get("route"), "path", "(unmatched)")
                self.metrics.inc("crossdock_collector_requests_total", endpoint=path,
                                 status=str(message["status"]))
            await send(message)

        await self.app(scope, receive, send_counted)


class DirectTracking:
    """The tracking endpoints (POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/alias,
    /v1/group, /v1/batch, and the browser SDKs' short and beacon paths, browser.py) answered
    straight from ASGI, past FastAPI's routing, dependency solving and middleware stack
    (CollectorApp): those were about half of the event loop's time per /v1/track request,
    and the event loop, not the accept transaction, bounded it. The routes stay registered
    (OpenAPI, and every other method or path still goes through them); a request here gets
    the same endpoint method, the same errors (`error_response`) and the same route in its
    scope for the request count."""

    def __init__(self, collector: Collector, routes: dict[str, tuple[APIRoute, str]]) -> None:
        self.collector = collector
        #: path -> the registered route and the message type it takes ("batch" for a batch),
        #: filled in by make_app once the routes exist
        self.routes = routes

    def route_of(self, scope: Scope) -> tuple[APIRoute, str] | None:
        """The route and message type of a request answered here, or None."""
        if (scope["type"] == "http" and scope["method"] == "POST"
                and not scope.get("root_path")):
            return self.routes.get(scope["path"])
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.route_of(scope)
        assert found is not None, "CollectorApp sends only tracking requests here"
        route, kind = found
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope.setdefault("path_params", {})
        request = Request(scope, receive, send)
        try:
            if kind == "batch":
                response = await self.collector.batch(request)
            else:
                response = await self.collector.segment(kind, request)
        except ApiError as exc:
            response = error_response(exc)
        except Exception:  # FastAPI's ServerErrorMiddleware is not around these: answer here
            log.exception("%s %s failed", scope["method"], scope["path"])
            response = error_response(ApiError(500, "internal error; see the collector's log"))
        await response(scope, receive, send)


class CollectorApp(FastAPI):
    """The collector's app: tracking requests go straight to `tracking` (the request count,
    CORS and DirectTracking), everything else through FastAPI as usual."""

    def __init__(self, *, direct: DirectTracking, tracking: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct = direct
        self.tracking = tracking

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.direct.route_of(scope) is not None:
            scope["app"] = self
            await self.tracking(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def make_app(
    loaded: LoadedConfig,
    pipeline: Pipeline[ProfileStore],
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    counters: Metrics | None = None,
) -> FastAPI:
    """The collector for a config and a pipeline (whose outbox it commits through);
    `counters`: where it counts its requests (the daemon's, shown by its ops listener too)."""
    collector = Collector(loaded, pipeline, clock=clock, monotonic=monotonic,
                          counters=counters)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(collector.close)

    direct: dict[str, tuple[APIRoute, str]] = {}
    answered_directly = DirectTracking(collector, direct)
    # the request count outside, so it counts every answer; CORS outside the answers, so
    # they get their CORS headers too (the same order as for FastAPI's routes below)
    app = CollectorApp(
        direct=answered_directly,
        tracking=CountRequests(CorsHeaders(answered_directly, policy=collector.origins,
                                           is_browser_path=browser.is_browser_path),
                               metrics=collector.metrics),
        title="Crossdock collector", version=__version__,
        description="Segment-compatible tracking endpoints and the user API.",
        lifespan=lifespan)
    app.state.collector = collector

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(ApiError(exc.status_code, str(exc.detail),
                                       headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error_response(ApiError(422, "; ".join(problems)))

    app.add_middleware(CorsHeaders, policy=collector.origins,
                       is_browser_path=browser.is_browser_path)
    app.add_middleware(CountRequests, metrics=collector.metrics)  # outside: counts all

    def segment_endpoint(kind: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await collector.segment(kind, request)

        endpoint.__name__ = kind
        return endpoint

    for kind, model in SEGMENT_TYPES.items():
        app.add_api_route(
            f"/v1/{kind}", segment_endpoint(kind), methods=["POST"], tags=["tracking"],
            summary=f"Accept one {kind} message (Segment spec)",
            responses={200: {"model": Queued}, **_TRACKING_ERRORS},
            openapi_extra=_body(model.__name__),
        )

    @app.post("/v1/batch", tags=["tracking"], summary="Accept up to 500 messages (500 KB)",
              responses={200: {"model": Queued}, **_TRACKING_ERRORS},
              openapi_extra=_body("Batch"))
    async def batch(request: Request) -> Response:
        return await collector.batch(request)

    tracking = {f"/v1/{kind}": kind for kind in SEGMENT_TYPES} | {"/v1/batch": "batch"}
    browser.add_routes(app, collector, tracking, segment_endpoint, batch)

    @app.post("/v1/accounts/{account}/users", tags=["user API"],
              summary="Update a user's attributes and opt-ins",
              responses={200: {"model": Queued}, 404: {"model": ErrorResponse}, **_ERRORS},
              openapi_extra=_body("UserUpdate"))
    async def users(account: str, request: Request) -> Response:
        return await collector.account(account, UserUpdate, request)

    @app.post("/v1/accounts/{account}/events", tags=["user API"], summary="Record an event",
              responses={200: {"model": Queued}, 404: {"model": ErrorResponse}, **_ERRORS},
              openapi_extra=_body("EventRequest"))
    async def events(account: str, request: Request) -> Response:
        return await collector.account(account, EventRequest, request)

    @app.get("/healthz", tags=["operations"], summary="Liveness and outbox access",
             openapi_extra={"security": []})
    async def healthz() -> Response:
        return await run_in_threadpool(collector.healthz)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             response_class=PlainTextResponse, openapi_extra={"security": []})
    async def metrics() -> Response:
        text = await run_in_threadpool(collector.metrics_text)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    direct.update({route.path: (route, tracking[route.path]) for route in app.routes
                   if isinstance(route, APIRoute) and route.path in tracking
                   and "POST" in (route.methods or ())})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(_schemas())
            components["securitySchemes"] = {
                "writeKey": {"type": "http", "scheme": "basic",
                             "description": "the write key as the user name"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
            schema["security"] = [{"writeKey": []}, {"bearer": []}]
            for path, operations in schema.get("paths", {}).items():
                if path.startswith("/v1/accounts/"):
                    # The user API takes its account's key as a Bearer token, never Basic.
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
