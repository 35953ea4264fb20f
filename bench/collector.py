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

from bench.common import (
    PG_URL,
    WRITE_KEY,
    Outcome,
    Row,
    Settings,
    elapsed,
    interleaved,
    pg_unreachable,
    process,
)
from bench.common import sample_message as message
from crossdock.outbox.pg_schema import temporary_schema

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


def backend_cpu(conninfo: str, application: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving a connection named `application`
    (the collector's pool: its outbox URL names it), read from /proc: the server runs on
    this machine. The collector process's own CPU hides what its SQL costs the server."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        pids = [int(row[0]) for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            [application]).fetchall()]
    found: dict[int, float] = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except FileNotFoundError:
            continue  # ended meanwhile
    return found


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


def measure(target: str, settings: Settings, bodies: Bodies, *,
            pg: tuple[str, str] | None = None) -> dict[str, Any]:
    """Rates and server CPU of /v1/track and /v1/batch beside the bare handler, on a collector
    server whose outbox is `target` (a SQLite file or a PostgreSQL URL). `pg`: (a URL of the
    server, the application name of the collector's connections) to measure the CPU of the
    PostgreSQL backends serving it as well."""
    track_n = settings.size(3_000, 50)
    batch_n = settings.size(150, 5)
    cpu: dict[str, list[float]] = {}
    db_cpu: dict[str, list[float]] = {}

    def runner(path: str, make: Callable[[int], list[bytes]], n: int,
               base: str, pid: int) -> Callable[[], tuple[int, float]]:
        def run() -> tuple[int, float]:
            bodies = make(n)
            backends = backend_cpu(*pg) if pg is not None else {}
            before = cpu_seconds(pid)
            done = post_all(base + path, bodies)
            cpu.setdefault(path, []).append((cpu_seconds(pid) - before) / n * 1000)
            if pg is not None:
                # A backend that started during the run counts from zero.
                spent = sum(at - backends.get(p, 0.0) for p, at in backend_cpu(*pg).items())
                db_cpu.setdefault(path, []).append(spent / n * 1000)
            return done
        return run

    with process("bench.collector_server", target) as (proc, port):
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
    found: dict[str, Any] = {}
    if pg is not None:
        # the PostgreSQL backends' CPU milliseconds per request (median of the runs)
        found["postgresql_cpu_ms_per_request"] = {path: statistics.median(v)
                                                  for path, v in db_cpu.items()}
    return {
        # the server's CPU milliseconds per request (median of the runs): steadier than the
        # rates on a shared machine
        "server_cpu_ms_per_request": {path: statistics.median(v) for path, v in cpu.items()},
        **found,
        "track_requests": track_n, "batch_requests": batch_n,
        "track": {"ours_req_per_s": track["ours"], "bare_req_per_s": track["bare"],
                  "ratio": track["ours"] / track["bare"]},
        "batch": {"ours_req_per_s": batch["ours"], "bare_req_per_s": batch["bare"],
                  "ours_msg_per_s": batch["ours"] * BATCH, "ratio": batch["ours"] / batch["bare"]},
    }


def rows_of(found: dict[str, Any], outbox: str) -> list[Row]:
    track, batch = found["track"], found["batch"]
    return [
        Row("collector", f"/v1/track (1 message){outbox}", "req/s", track["ours_req_per_s"],
            track["bare_req_per_s"], "bare ASGI handler", f">= {TARGET_TRACK:.0%}",
            track["ratio"] >= TARGET_TRACK),
        Row("collector", f"/v1/batch ({BATCH} messages){outbox}", "req/s",
            batch["ours_req_per_s"], batch["bare_req_per_s"], "bare ASGI handler",
            f">= {TARGET_BATCH:.0%}", batch["ratio"] >= TARGET_BATCH),
    ]


def bench(settings: Settings, pg_url: str = PG_URL) -> Outcome:
    bodies = Bodies()
    with tempfile.TemporaryDirectory() as tmp:
        found = measure(str(Path(tmp) / "collector.db"), settings, bodies)
    rows = rows_of(found, "")
    detail: dict[str, Any] = {"concurrency": CONCURRENCY, **found}
    reason = pg_unreachable(pg_url)
    if reason is None:
        with temporary_schema(pg_url, prefix="crossdock_bench") as outbox_url:
            # The collector's connections carry the schema's name, so that their backends
            # can be told from everyone else's on a shared server.
            application = outbox_url.rsplit("%3D", 1)[1]
            detail["postgresql"] = measure(f"{outbox_url}&application_name={application}",
                                           settings, bodies, pg=(pg_url, application))
        rows += rows_of(detail["postgresql"], ", PostgreSQL outbox")
    else:
        detail["postgresql_skipped"] = reason
    return Outcome(rows=rows, detail=detail)
