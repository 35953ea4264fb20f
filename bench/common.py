"""Pieces every benchmark shares: sizes, timing, configs, sample messages, processes."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossdock.config import LoadedConfig
from crossdock.loader import parse_config

ROOT = Path(__file__).resolve().parent.parent
DESTINATIONS = ("hook-a", "hook-b", "hook-c", "hook-d")
WRITE_KEY = "bench-write-key"


@dataclass
class Settings:
    """How big and how often: `quick` shrinks everything so CI can run it in seconds."""

    quick: bool = False
    repeats: int = 3

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Row:
    """One line of the results table: our figure beside the raw baseline's."""

    benchmark: str
    measure: str
    unit: str
    ours: float
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline


@dataclass
class Outcome:
    """What one benchmark measured: table rows plus any detail worth keeping in the JSON."""

    rows: list[Row] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def median_rate(run: Callable[[], tuple[int, float]], repeats: int) -> float:
    """The median of `repeats` runs of (items, seconds), as items per second."""
    rates = []
    for _ in range(repeats):
        items, seconds = run()
        rates.append(items / seconds)
    return statistics.median(rates)


def interleaved(runs: dict[str, Callable[[], tuple[int, float]]],
                repeats: int) -> dict[str, float]:
    """Median rate of each run, the runs alternating so drift on a noisy machine hits all."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            items, seconds = run()
            rates[name].append(items / seconds)
    return {name: statistics.median(values) for name, values in rates.items()}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def sample_message(i: int, kind: str = "track") -> dict[str, Any]:
    """A typical analytics.js track call (about 600 bytes of JSON)."""
    return {
        "type": kind,
        "messageId": f"bench-{i}",
        "userId": f"user-{i % 5000}",
        "anonymousId": f"anon-{i % 7000}",
        "event": "Order Completed",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "properties": {
            "orderId": f"order-{i}", "total": 42.5, "revenue": 38.0, "currency": "USD",
            "coupon": "SPRING", "products": [
                {"sku": "A-1", "name": "Mug", "price": 12.5, "quantity": 2},
                {"sku": "B-7", "name": "Tea", "price": 17.5, "quantity": 1},
            ],
        },
        "context": {
            "ip": "203.0.113.7", "locale": "en-US",
            "library": {"name": "analytics.js", "version": "4.1.0"},
            "page": {"path": "/checkout", "url": "https://shop.example/checkout"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
            "traits": {"email": f"user{i % 5000}@example.com", "plan": "pro"},
        },
    }


def webhook_config(db_path: Path, url: str, *, names: tuple[str, ...] = DESTINATIONS,
                   batch: bool = False, concurrency: int | None = None,
                   batch_size: int | None = None) -> LoadedConfig:
    """Webhook destinations named `names`, all posting to `url`, on a SQLite outbox."""
    raw = webhook_raw(f"sqlite:///{db_path}", url, names=names, batch=batch,
                      concurrency=concurrency, batch_size=batch_size)
    return parse_config(raw, base_dir=db_path.parent, env={})


def webhook_raw(outbox_url: str, url: str, *, names: tuple[str, ...] = DESTINATIONS,
                batch: bool = False, concurrency: int | None = None,
                batch_size: int | None = None) -> dict[str, Any]:
    """The crossdock.yaml contents of `webhook_config`, on the outbox at `outbox_url`."""
    delivery: dict[str, Any] = {"timeout": 30}
    if concurrency is not None:
        delivery["concurrency"] = concurrency
    if batch_size is not None:
        delivery["batch_size"] = batch_size
    return {
        "outbox": {"url": outbox_url},
        "collector": {"write_keys": [WRITE_KEY], "rate_limit_per_minute": 100_000_000,
                      "max_body_bytes": 5_000_000},
        "destinations": {
            name: {"plugin": "webhook",
                   "settings": {"url": url, "batch": batch},
                   "delivery": {"allow_private_network": True, **delivery}}
            for name in names
        },
    }


#: the PostgreSQL server of the PostgreSQL rows (the tests' server by default)
PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_unreachable(url: str) -> str | None:
    """Why the PostgreSQL rows cannot run (None: the server answers)."""
    import psycopg

    from crossdock.outbox.dsn import redact

    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {redact(url)} is unreachable: {' '.join(str(exc).split())}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


@contextmanager
def process(
    module: str, *args: str, ready: str = "READY"
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `python -m module args` until the block ends; yields it and the text after its
    ready line (e.g. the port it bound)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(ready):
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"{module} did not start: {line!r} {err[-2000:]}")
        yield proc, line[len(ready):].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def sink(record: bool = False) -> Iterator[str]:
    """The loopback destination (bench/sink.py) in its own process; yields its base URL."""
    args = ["--record"] if record else []
    with process("bench.sink", *args) as (_, port):
        yield f"http://127.0.0.1:{port}"


def run_json(module: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run `python -m module args` to the end; its last stdout line is a JSON object."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=child_env(),
        capture_output=True, text=True, timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def inputs_frozen() -> Iterator[None]:
    """Time a block with everything alive before it (the harness's inputs built in advance)
    left out of the garbage collector's passes; garbage made inside the block is still
    collected as usual. Without it, the 20,000 parsed messages the route benchmark holds
    for its whole run were traversed by every full collection and charged to the route
    step (a quarter of its time), though `crossdock send` and the collector hold one
    chunk of messages at a time."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def elapsed(start: float) -> float:
    return max(time.perf_counter() - start, 1e-9)
