"""The ops listener: /healthz, /readyz and /metrics on an address of their own (config
`ops: {host, port}`, 127.0.0.1:8089 by default), served by `crossdock run` whether the
collector is on or off (docs/operations.md).

- `GET /healthz`: 200 while the daemon's event loop answers (liveness: restart when not).
- `GET /readyz`: 200 when the outbox answers, its schema is the one this code knows, and
  every destination's delivery worker runs; 503 with each failed check otherwise.
- `GET /metrics`: Prometheus text (crossdock.metrics says what and why prometheus_client).
- `/console/...`: the operator console (crossdock.console), when it is configured: its own
  ASGI app, handed every path under /console.

A plain ASGI app: three GET routes need no framework, and it never shares the collector's
middleware, rate limits or credentials.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from crossdock import __version__
from crossdock.outbox.base import Outbox


class Readiness:
    """/readyz's checks: the outbox (read through `outbox`, the one the collector and the
    profile store use from threads), its schema, and the workers (`stopped_workers()`: the
    destinations whose worker ended)."""

    def __init__(self, outbox: Outbox, stopped_workers: Callable[[], list[str]]) -> None:
        self.outbox = outbox
        self.stopped_workers = stopped_workers

    def check(self) -> tuple[bool, dict[str, str]]:
        """(ready, check name -> "ok" or what is wrong)."""
        checks: dict[str, str] = {}
        try:
            problems = self.outbox.schema_problems()
        except Exception as exc:  # the answer is the readiness report itself
            checks["outbox"] = f"unreachable: {exc}"
            checks["schema"] = "unknown (the outbox is unreachable)"
        else:
            checks["outbox"] = "ok"
            checks["schema"] = "; ".join(problems) or "ok"
        stopped = self.stopped_workers()
        checks["workers"] = (f"stopped: {', '.join(stopped)}" if stopped else "ok")
        return all(v == "ok" for v in checks.values()), checks


class OpsApp:
    """The ops listener's ASGI app."""

    def __init__(self, registry: CollectorRegistry, readiness: Readiness,
                 console: ASGIApp | None = None) -> None:
        self.registry = registry
        self.readiness = readiness
        #: the console's ASGI app (its routes are all under /console), or None: off
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # uvicorn runs it with lifespan off: nothing else arrives
        path, method = scope["path"], scope["method"]
        if self.console is not None and (path == "/console" or path.startswith("/console/")):
            await self.console(scope, receive, send)
        elif path not in ("/healthz", "/readyz", "/metrics"):
            await _answer(send, 404, {"status": "error",
                                      "message": f"{path}: not found (the ops listener "
                                                 "serves /healthz, /readyz, /metrics)"})
        elif method not in ("GET", "HEAD"):
            await _answer(send, 405, {"status": "error", "message": f"{method}: use GET"},
                          [(b"allow", b"GET, HEAD")])
        elif path == "/healthz":
            await _answer(send, 200, {"status": "ok", "version": __version__})
        elif path == "/readyz":
            # Database reads: off the loop, which the delivery workers share.
            ready, checks = await run_in_threadpool(self.readiness.check)
            await _answer(send, 200 if ready else 503,
                          {"status": "ok" if ready else "error", "checks": checks})
        else:
            body = await run_in_threadpool(generate_latest, self.registry)
            await _send(send, 200, body, CONTENT_TYPE_LATEST.encode())


async def _answer(send: Send, status: int, data: dict[str, Any],
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send(send, status, json.dumps(data).encode(), b"application/json", headers)


async def _send(send: Send, status: int, body: bytes, content_type: bytes,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
