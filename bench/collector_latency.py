"""Accept to deliver THROUGH the collector: p50 / p99 at a steady 1,000 messages per second.

A real `crossdock run` daemon (collector on, the profile store, one webhook destination with
its defaults: one message per request, 4 in flight) delivers to the sink (bench/sink.py
--record, its own process). A client posts one message per `/v1/track` request, 10 requests
every 10 ms over keep-alive connections, never waiting for an answer before the next tick.
A message's latency is its arrival at the sink minus the moment its request was sent: HTTP,
authentication, the accept transaction (profile store, route, outbox commit), the wake-up, the
lease and the send. The same on a SQLite outbox and on a PostgreSQL one (a schema of its own
in $CROSSDOCK_TEST_PG, dropped afterwards; left out, with the reason in the JSON, when the
server is unreachable). bench/latency.py measures from `Pipeline.accept` instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

from bench.common import (
    PG_URL,
    ROOT,
    WRITE_KEY,
    Outcome,
    Row,
    Settings,
    child_env,
    pg_unreachable,
    sample_message,
    sink,
    webhook_raw,
)
from bench.latency import summary
from bench.scale import stop_daemons
from crossdock.outbox.pg_schema import temporary_schema

RATE = 1_000
TICK = 0.010
TARGET_P99_MS = 250.0
AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
#: bounds that turn a stuck daemon into a clear error; not speed assertions
READY_TIMEOUT = 60.0
TAIL_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "authorization": AUTH})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


@contextmanager
def daemon(outbox_url: str, sink_url: str, workdir: Path) -> Iterator[str]:
    """`crossdock run` with the collector on a free port; yields the collector's base URL once
    it answers a track call."""
    port = _free_port()
    raw = webhook_raw(outbox_url, f"{sink_url}/hook", names=("hook-a",))
    raw["collector"].update({"host": "127.0.0.1", "port": port})
    config = workdir / "crossdock.yaml"
    config.write_text(yaml.safe_dump(raw))
    log = workdir / "daemon.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crossdock.cli", "run", "-c", str(config)], cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT, env=child_env(CROSSDOCK_LOAD_PLUGINS="webhook"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        warm = json.dumps({k: v for k, v in sample_message(-1).items() if k != "type"}).encode()
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"collector latency: the daemon did not start; log:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")
            try:
                if _post(f"{base}/v1/track", warm) == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        yield base
    finally:
        stop_daemons([proc])


def _arrivals(sink_url: str) -> list[tuple[str, float]]:
    return [(str(m), float(t)) for m, t in httpx.get(f"{sink_url}/_arrivals", timeout=30).json()]


def run(base: str, sink_url: str, seconds: float) -> dict[str, Any]:
    per_tick = int(RATE * TICK)
    ticks = int(seconds / TICK)
    sent: dict[str, float] = {}
    # the warm-up call's message first, so the sink holds only the timed ones
    deadline = time.monotonic() + TAIL_TIMEOUT
    while not _arrivals(sink_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    httpx.post(f"{sink_url}/_reset")
    bodies = [json.dumps({k: v for k, v in sample_message(i).items() if k != "type"}).encode()
              for i in range(per_tick * ticks)]
    headers = {"content-type": "application/json", "authorization": AUTH}
    failures: list[str] = []

    async def main() -> None:
        # No total timeout: a backlogged daemon answers late, and the late answers are what
        # the percentiles measure (aiohttp's default of 5 minutes crashed the run under load).
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100),
                                         timeout=aiohttp.ClientTimeout(total=None,
                                                                       sock_connect=30)) as session:
            async def post(i: int) -> None:
                sent[f"bench-{i}"] = time.time()
                async with session.post(f"{base}/v1/track", data=bodies[i],
                                        headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        failures.append(f"HTTP {r.status}")

            loop = asyncio.get_running_loop()
            start = loop.time()
            tasks: list[asyncio.Task[None]] = []
            for tick in range(ticks):
                delay = start + tick * TICK - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks += [asyncio.create_task(post(tick * per_tick + j))
                          for j in range(per_tick)]
            await asyncio.gather(*tasks)

    asyncio.run(main())
    if failures:
        raise RuntimeError(f"collector latency: {len(failures)} requests failed: {failures[:3]}")
    deadline = time.monotonic() + TAIL_TIMEOUT
    arrived = _arrivals(sink_url)
    while len(arrived) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.1)
        arrived = _arrivals(sink_url)
    httpx.post(f"{sink_url}/_reset")
    return summary("collector latency", sent, arrived)


def bench(settings: Settings, pg_url: str = PG_URL) -> Outcome:
    seconds = 20.0 if not settings.quick else 1.0
    results: dict[str, Any] = {}
    with sink(record=True) as sink_url, tempfile.TemporaryDirectory() as tmp:
        with daemon(f"sqlite:///{Path(tmp) / 'crossdock.db'}", sink_url, Path(tmp)) as base:
            results["sqlite"] = run(base, sink_url, seconds)
        reason = pg_unreachable(pg_url)
        if reason is None:
            with temporary_schema(pg_url, prefix="crossdock_bench") as outbox_url, \
                    daemon(outbox_url, sink_url, Path(tmp)) as base:
                results["postgresql"] = run(base, sink_url, seconds)
        else:
            results["postgresql_skipped"] = reason
    rows: list[Row] = []
    for engine in ("sqlite", "postgresql"):
        found = results.get(engine)
        if found is None:
            continue
        label = f"through the collector, {engine} outbox, 1 msg/request at {RATE:,} msg/s"
        rows += [Row("latency", f"p50, {label}", "ms", found["p50_ms"]),
                 Row("latency", f"p99, {label}", "ms", found["p99_ms"],
                     target=f"< {TARGET_P99_MS:g} ms", met=found["p99_ms"] < TARGET_P99_MS)]
    return Outcome(rows=rows, detail={"rate": RATE, "duration_s": seconds, **results})
