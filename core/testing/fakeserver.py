"""Run an aiohttp application on 127.0.0.1 in a background thread.

Contract fakes of destinations (plugins/<name>/fake.py) are aiohttp applications; tests, the
demo and the benchmarks start them with `serve()` and talk to them over real HTTP.

    with serve(make_app()) as server:
        httpx.post(server.url + "/hook", json={...})
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class RunningServer:
    """A server listening on 127.0.0.1:`port`; `app` is the aiohttp application it serves."""

    app: web.Application
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the server's loop (to touch fake state without races)."""
        if asyncio.iscoroutinefunction(fn):
            return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result()

        async def wrapper() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result()


@contextmanager
def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningServer]:
    """Serve `app` until the block ends; port 0 picks a free port."""
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr,attr-defined]
        stop = asyncio.Event()
        holder["server"] = RunningServer(
            app, host, sockets[0].getsockname()[1], asyncio.get_running_loop(), stop
        )
        started.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surface start-up failures to the caller
            holder["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="crossdock-fakeserver", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in holder:
        raise RuntimeError(f"fake server failed to start: {holder['error']}") from holder["error"]
    server: RunningServer = holder["server"]
    try:
        yield server
    finally:
        assert server._stop is not None
        server.loop.call_soon_threadsafe(server._stop.set)
        thread.join(10)
