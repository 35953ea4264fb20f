"""What every contract fake shares: scripted replies, artificial latency, injected faults, and
the control routes `GET /_fake/received` and `POST /_fake/script` that other processes
(end-to-end tests, the demo) use to read and steer a fake they did not start.

    class MyFake(FakeState):
        def snapshot(self) -> dict[str, Any]:
            return {"received": self.received}

    fake = MyFake()
    fake.script([500, 200])                       # the next two requests get these statuses
    fake.fail_next(429, "slow down", {"Retry-After": "2"})
    fake.inject(Fault.reset(), Fault.hang())      # the next two requests meet these faults
    fake.down(Fault.status_storm(503))            # every request until fake.heal()

    POST /_fake/script {"replies": [500, {"status": 429, "body": "x", "headers": {...}}]}
    POST /_fake/script {"latency": 0.05}          # seconds added to every reply
    POST /_fake/script {"faults": [{"kind": "reset"}, {"kind": "hang", "seconds": 30}]}
    POST /_fake/script {"outage": {"kind": "status", "status": 500}}   # null: heal
    POST /_fake/script {"reset": true}            # forget what arrived and what is scripted

Faults are how a destination breaks, applied before the fake's own handler by a middleware
that `fake_app` installs, so every fake has them: a status storm (`status`, with headers such
as an odd Retry-After), a request left hanging until the client gives up (`hang`), a
connection reset with no answer (`reset`), a 200 whose body is `size` bytes (`huge`). A fault
costs the request: the fake records nothing of it (`faulted` counts them by kind).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """A scripted answer; a 2xx reply lets the fake handle the request normally."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> Reply:
        if isinstance(raw, Reply):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            return cls(raw)
        if isinstance(raw, dict) and isinstance(raw.get("status"), int):
            headers = raw.get("headers") or {}
            return cls(raw["status"], str(raw.get("body", "")),
                       {str(k): str(v) for k, v in headers.items()})
        raise ValueError(f"a reply is a status or {{status, body, headers}}, got {raw!r}")

    @property
    def passes(self) -> bool:
        return 200 <= self.status < 300

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=self.body, headers=self.headers)


FAULT_KINDS = ("status", "hang", "reset", "huge")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fault:
    """A way the destination breaks for one request (see the module docstring)."""

    kind: str
    status: int = 503
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    #: hang: seconds before the fake answers 504, unless the client gave up first
    seconds: float = 3600.0
    #: huge: bytes of body
    size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"a fault kind is one of {', '.join(FAULT_KINDS)}, "
                             f"got {self.kind!r}")

    @classmethod
    def status_storm(cls, status: int = 503, headers: dict[str, str] | None = None,
                     body: str = "") -> Fault:
        return cls("status", status, body or f"injected {status}", headers or {})

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def huge(cls, size: int) -> Fault:
        return cls("huge", 200, size=size)

    @classmethod
    def parse(cls, raw: Any) -> Fault:
        if isinstance(raw, Fault):
            return raw
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            raise ValueError(f"a fault is {{kind, ...}}, got {raw!r}")
        headers = raw.get("headers") or {}
        return cls(raw["kind"], int(raw.get("status", 503)), str(raw.get("body", "")),
                   {str(k): str(v) for k, v in headers.items()},
                   float(raw.get("seconds", 3600.0)), int(raw.get("size", 0)))

    async def apply(self, request: web.Request) -> web.StreamResponse:
        """Break this request as the fault says."""
        if self.kind == "status":
            return web.Response(status=self.status, text=self.body, headers=self.headers)
        if self.kind == "reset":
            _reset(request)
            return web.Response(status=500)  # never reaches the client
        if self.kind == "hang":
            transport = request.transport
            waited = 0.0
            # Until the client gives up (its timeout closes the connection), or `seconds`.
            while waited < self.seconds and transport is not None and not transport.is_closing():
                await asyncio.sleep(0.05)
                waited += 0.05
            return web.Response(status=504, text="hung")
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.content_length = self.size
        await response.prepare(request)
        chunk = b"x" * _CHUNK
        left = self.size
        try:
            while left > 0:
                await response.write(chunk[:left])
                left -= _CHUNK
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading: what a bounded reader does
        return response


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), as a crashed or firewalled
    destination does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass
class FakeState:
    """State of one contract fake, safe to touch from the test's thread."""

    latency: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    #: a fault every request meets until `heal()` (an outage, a 500 storm)
    outage: Fault | None = None
    #: requests that met a fault, by kind
    faulted: Counter[str] = field(default_factory=Counter)
    #: the next this many writes the fake takes are kept and answered 504, as when the
    #: service did the work and its answer never reached the sender (a timeout); a fake
    #: calls `take_lost_answer()` after each such write
    lost_answers: int = 0
    _replies: deque[Reply] = field(default_factory=deque, repr=False)
    _faults: deque[Fault] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def inject(self, *faults: Fault) -> None:
        """The next requests meet these faults, one each, in order (before any outage)."""
        with self._lock:
            self._faults.extend(faults)

    def down(self, fault: Fault) -> None:
        """Every request meets `fault` until `heal()`."""
        with self._lock:
            self.outage = fault

    def heal(self) -> None:
        with self._lock:
            self.outage = None

    def next_fault(self) -> Fault | None:
        """The fault the next request meets (None: it is handled normally); counted."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else self.outage
            if fault is not None:
                self.faulted[fault.kind] += 1
            return fault

    def script(self, replies: list[Any]) -> None:
        """Answer the next requests with these statuses (or Reply objects / dicts), in order."""
        parsed = [Reply.parse(r) for r in replies]
        with self._lock:
            self._replies.extend(parsed)

    def fail_next(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        """Answer the next request with this status, body and headers."""
        self.script([Reply(status, body, headers or {})])

    def take_lost_answer(self) -> bool:
        """Whether the write just made has its answer lost (`lost_answers`), counted."""
        with self._lock:
            if self.lost_answers <= 0:
                return False
            self.lost_answers -= 1
            return True

    def next_reply(self) -> Reply | None:
        with self._lock:
            return self._replies.popleft() if self._replies else None

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.received.append(entry)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._replies.clear()
            self._faults.clear()
            self.outage = None
            self.faulted.clear()
            self.lost_answers = 0

    def snapshot(self) -> dict[str, Any]:
        """What `GET /_fake/received` returns; fakes add their own counters."""
        with self._lock:
            snap: dict[str, Any] = {"received": list(self.received)}
            if self.faulted:  # requests that met an injected fault, by kind
                snap["faulted"] = dict(self.faulted)
            return snap

    async def delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)


class Refused(Exception):
    """A request a fake refuses: raised where the fake finds the problem (deep in checking a
    body), answered by its handler with the API's error: `status`, the error `body` in the
    API's own shape (a fake builds it in one function: `_refused(status, message)`), and any
    `headers` the answer carries (a Retry-After, rate-limit counters)."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None
                 ) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})

    def response(self, headers: Mapping[str, str] | None = None) -> web.Response:
        """The answer: the body as JSON with the status, `headers` under the refusal's own."""
        return web.json_response(self.body, status=self.status,
                                 headers={**(headers or {}), **self.headers})


def body_json(raw: bytes) -> Any:
    """A request body as a fake records it: the JSON value, the text when it is not JSON (so
    a refusal can show what came), or None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


S = TypeVar("S", bound=FakeState)


def fake_app(key: web.AppKey[S], state: S, *, client_max_size: int = 1024**2
             ) -> web.Application:
    """A fake's aiohttp application: `state` kept as `app[key]`, the control routes added
    (add the fake's own routes after them)."""
    app = web.Application(client_max_size=client_max_size, middlewares=[_faults(state)])
    app[key] = state
    add_control_routes(app, state)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_handler(state: FakeState, answer: Callable[[web.Request, Any], web.Response]
                 ) -> Handler:
    """The handler of a fake whose API takes JSON bodies: after the scripted latency, the
    body read (`body_json`), `answer(request, body)` asked for the response, and the exchange
    recorded as `state.received` keeps it (method, path, body, lower-cased headers, status)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await state.delay()
        body = body_json(await request.read())
        response = answer(request, body)
        state.record({"method": request.method, "path": request.path, "body": body,
                      "headers": {k.lower(): v for k, v in request.headers.items()},
                      "status": response.status})
        return response

    return handle


def _faults(state: FakeState) -> Any:
    """The middleware that breaks requests as `state` says, before the fake's handler."""

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await handler(request)
        fault = state.next_fault()
        if fault is None:
            return await handler(request)
        await state.delay()
        return await fault.apply(request)

    return faults


def add_control_routes(app: web.Application, state: FakeState) -> None:
    """Add `GET /_fake/received` (also `GET /_fake/state`: what the fake holds and got) and
    `POST /_fake/script` (register before catch-all routes)."""

    async def received(request: web.Request) -> web.Response:
        return web.json_response(state.snapshot())

    async def script(request: web.Request) -> web.Response:
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            if data.get("reset"):
                state.reset()
            if "latency" in data:
                state.latency = float(data["latency"])
            state.script(list(data.get("replies") or []))
            state.inject(*(Fault.parse(f) for f in data.get("faults") or []))
            if "outage" in data:
                outage = data["outage"]
                if outage is None:
                    state.heal()
                else:
                    state.down(Fault.parse(outage))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    app.router.add_get("/_fake/received", received)
    app.router.add_get("/_fake/state", received)
    app.router.add_post("/_fake/script", script)
