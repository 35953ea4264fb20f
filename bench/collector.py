"""Collector: requests per second to /v1/track (one message) and /v1/batch (100 messages)
against a bare ASGI handler (read body, parse JSON, answer) on the same uvicorn server, which
runs in its own process; the load comes from aiohttp with a fixed number of connections.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import WRITE_KEY, Outcome, Row, Settings, elapsed, interleaved, process
from bench.common import sample_message as message

CONCURRENCY = 8
BATCH = 100
TARGET_TRACK = 0.40
TARGET_BATCH = 0.12
AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def post_all(url: str, bodies: list[bytes]) -> tuple[int, float]:
    """POST every body with CONCURRENCY connections; every answer must be 200."""
    headers = {"content-type": "application/json", "authorization": AUTH}

    async def main() -> tuple[int, float]:
        queue = list(reversed(bodies))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as s:
            async def slot() -> None:
                while queue:
                    body = queue.pop()
                    async with s.post(url, data=body, headers=headers) as r:
                        text = await r.read()
                        if r.status != 200:
                            raise RuntimeError(f"{url}: HTTP {r.status} {text[:300]!r}")

            start = time.perf_counter()
            await asyncio.gather(*(slot() for _ in range(CONCURRENCY)))
            return len(bodies), elapsed(start)

    return asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads): what the server spent,
    whatever else the machine runs at the time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bodies:
    """Fresh message ids for every run, so no run is answered as a duplicate."""

    def __init__(self) -> None:
        self.next_id = 0

    def take(self, n: int) -> list[dict[str, Any]]:
        out = [message(self.next_id + i) for i in range(n)]
        self.next_id += n
        return out

    def track(self, requests: int) -> list[bytes]:
        return [json.dumps({k: v for k, v in m.items() if k != "type"}).encode()
                for m in self.take(requests)]

    def batch(self, requests: int) -> list[bytes]:
        return [json.dumps({"batch": self.take(BATCH)}).encode() for _ in range(requests)]


def bench(settings: Settings) -> Outcome:
    track_n = settings.size(3_000, 50)
    batch_n = settings.size(150, 5)
    bodies = Bodies()

    cpu: dict[str, list[float]] = {}

    def runner(path: str, make: Callable[[int], list[bytes]], n: int,
               base: str, pid: int) -> Callable[[], tuple[int, float]]:
        def run() -> tuple[int, float]:
            bodies = make(n)
            before = cpu_seconds(pid)
            done = post_all(base + path, bodies)
            cpu.setdefault(path, []).append((cpu_seconds(pid) - before) / n * 1000)
            return done
        return run

    with tempfile.TemporaryDirectory() as tmp, \
            process("bench.collector_server", str(Path(tmp) / "collector.db")) as (proc, port):
        base = f"http://127.0.0.1:{port}"
        post_all(base + "/v1/track", bodies.track(20))  # warm up both paths
        post_all(base + "/bare/v1/track", bodies.track(20))
        track = interleaved({
            "ours": runner("/v1/track", bodies.track, track_n, base, proc.pid),
            "bare": runner("/bare/v1/track", bodies.track, track_n, base, proc.pid),
        }, settings.repeats)
        batch = interleaved({
            "ours": runner("/v1/batch", bodies.batch, batch_n, base, proc.pid),
            "bare": runner("/bare/v1/batch", bodies.batch, batch_n, base, proc.pid),
        }, settings.repeats)
    rows = [
        Row("collector", "/v1/track (1 message)", "req/s", track["ours"], track["bare"],
            "bare ASGI handler", f">= {TARGET_TRACK:.0%}",
            track["ours"] / track["bare"] >= TARGET_TRACK),
        Row("collector", f"/v1/batch ({BATCH} messages)", "req/s", batch["ours"], batch["bare"],
            "bare ASGI handler", f">= {TARGET_BATCH:.0%}",
            batch["ours"] / batch["bare"] >= TARGET_BATCH),
    ]
    return Outcome(rows=rows, detail={
        # the server's CPU milliseconds per request (median of the runs): steadier than the
        # rates on a shared machine
        "server_cpu_ms_per_request": {path: statistics.median(v) for path, v in cpu.items()},
        "concurrency": CONCURRENCY, "track_requests": track_n, "batch_requests": batch_n,
        "track": {"ours_req_per_s": track["ours"], "bare_req_per_s": track["bare"],
                  "ratio": track["ours"] / track["bare"]},
        "batch": {"ours_req_per_s": batch["ours"], "bare_req_per_s": batch["bare"],
                  "ours_msg_per_s": batch["ours"] * BATCH, "ratio": batch["ours"] / batch["bare"]},
    })
