"""What every contract fake shares: scripted replies, artificial latency, and the control routes
`GET /_fake/received` and `POST /_fake/script` that other processes (end-to-end tests, the demo)
use to read and steer a fake they did not start.

    class MyFake(FakeState):
        def snapshot(self) -> dict[str, Any]:
            return {"received": self.received}

    fake = MyFake()
    fake.script([500, 200])                       # the next two requests get these statuses
    fake.fail_next(429, "slow down", {"Retry-After": "2"})

    POST /_fake/script {"replies": [500, {"status": 429, "body": "x", "headers": {...}}]}
    POST /_fake/script {"latency": 0.05}          # seconds added to every reply
    POST /_fake/script {"reset": true}            # forget what arrived and what is scripted
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
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


@dataclass
class FakeState:
    """State of one contract fake, safe to touch from the test's thread."""

    latency: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    _replies: deque[Reply] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def script(self, replies: list[Any]) -> None:
        """Answer the next requests with these statuses (or Reply objects / dicts), in order."""
        parsed = [Reply.parse(r) for r in replies]
        with self._lock:
            self._replies.extend(parsed)

    def fail_next(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        """Answer the next request with this status, body and headers."""
        self.script([Reply(status, body, headers or {})])

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

    def snapshot(self) -> dict[str, Any]:
        """What `GET /_fake/received` returns; fakes add their own counters."""
        with self._lock:
            return {"received": list(self.received)}

    async def delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)


S = TypeVar("S", bound=FakeState)


def fake_app(key: web.AppKey[S], state: S, *, client_max_size: int = 1024**2
             ) -> web.Application:
    """A fake's aiohttp application: `state` kept as `app[key]`, the control routes added
    (add the fake's own routes after them)."""
    app = web.Application(client_max_size=client_max_size)
    app[key] = state
    add_control_routes(app, state)
    return app


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
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    app.router.add_get("/_fake/received", received)
    app.router.add_get("/_fake/state", received)
    app.router.add_post("/_fake/script", script)
