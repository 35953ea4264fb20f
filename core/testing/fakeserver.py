"""Run an aiohttp application on 127.0.0.1 in a background thread.

Contract fakes of destinations (plugins/<name>/fake.py) are aiohttp applications; tests, the
demo and the benchmarks start them with `serve()` and talk to them over real HTTP.

    with serve(make_app()) as server:
        httpx.post(server.url + "/hook", json={...})

Each fake also runs on its own (`python -m crossdock.plugins.<name>.fake --port 8099`):
`fake_arguments()` and `run_fake()` are that runner's common part, and `fake_process()` starts
it in a child process for a test.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
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


def fake_arguments(description: str, port: int) -> argparse.ArgumentParser:
    """The command line every fake's runner takes: --host, --port (default `port`) and
    --latency; a fake adds its own arguments to the parser."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to replies")
    return parser


def run_fake(app: web.Application, args: argparse.Namespace, *banner: str) -> None:
    """Serve `app` on --host:--port until interrupted. Each banner line is printed first, with
    "{url}" standing for the base URL, and flushed, so a parent process can read it."""
    url = f"http://{args.host}:{args.port}"
    for line in banner:
        print(line.replace("{url}", url), flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(argv: list[str], port: int, log: Path, timeout: float = 30.0
                   ) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server program (an S3-compatible server, sshd, an FTP server) until the block
    ends, its output in `log`; yields once it accepts TCP connections on 127.0.0.1:`port`."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not start: {log.read_text()}"
                                       ) from None
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class FakeProcess:
    """A fake's runner in a child process: its base URL and the first line it printed."""

    url: str
    banner: str
    process: subprocess.Popen[str]


@contextmanager
def fake_process(module: str, *args: str, timeout: float = 10.0) -> Iterator[FakeProcess]:
    """Run `python -m module --port <free port> *args` until the block ends, yielding once the
    fake answers HTTP (its control route GET /_fake/received)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", module, "--port", str(port), *args],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:  # the banner prints just before the socket listens
            try:
                httpx.get(url + "/_fake/received", timeout=timeout)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{module} did not start: {banner!r}") from None
                time.sleep(0.05)
        yield FakeProcess(url, banner, process)
    finally:
        process.terminate()
        process.wait(10)
