"""Latency: accepted-to-delivered p50 / p99 at a steady 1,000 messages per second.

One process does what `crossdock run` does: a producer hands 10 messages to `Pipeline.accept`
every 10 ms (in a worker thread, as the collector does), the commit wakes the delivery engine,
which sends them to the sink (bench/sink.py --record, its own process). The sink notes when
each messageId arrives; latency = arrival - the moment the message was handed to accept, so
the accept transaction itself is included. One webhook destination with its defaults (one
message per request, 4 in flight), and the same with `batch: true`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Outcome, Row, Settings, percentile, sample_message, sink
from bench.common import webhook_config as config
from crossdock.delivery import DeliveryEngine
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline

RATE = 1_000
TICK = 0.010
TARGET_P99_MS = 250.0


def run(url: str, seconds: float, *, batch: bool) -> dict[str, Any]:
    per_tick = int(RATE * TICK)
    ticks = int(seconds / TICK)
    handed: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "latency.db"
        loaded = config(db, f"{url}/hook", names=("hook-a",), batch=batch)
        outbox = SQLiteOutbox(db)

        async def main() -> None:
            engine = DeliveryEngine(loaded, outbox, poll_interval=0.5)
            pipeline = Pipeline(loaded, outbox, on_commit=lambda names: [
                engine.wake(n) for n in names])
            await engine.start()
            loop = asyncio.get_running_loop()
            start = loop.time()
            n = 0
            for tick in range(ticks):
                delay = start + tick * TICK - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                raws = [sample_message(n + i) for i in range(per_tick)]
                now = time.time()
                for raw in raws:
                    handed[raw["messageId"]] = now
                n += per_tick
                await loop.run_in_executor(None, pipeline.accept, raws)
            # Let the tail arrive, then stop.
            deadline = loop.time() + 10
            while loop.time() < deadline and outbox.counts()["hook-a"].delivered < n:
                await asyncio.sleep(0.05)
            await engine.stop()

        asyncio.run(main())
        outbox.close()
    arrivals = httpx.get(f"{url}/_arrivals", timeout=30).json()
    httpx.post(f"{url}/_reset")
    return summary("latency", handed, arrivals)


def summary(what: str, handed: dict[str, float],
            arrivals: list[tuple[str, float]]) -> dict[str, Any]:
    """p50 / p99 / max milliseconds from each message's start (`handed`, by messageId) to its
    arrival at the sink; raises when one never arrived."""
    latencies = [(t - handed[m]) * 1000 for m, t in arrivals if m in handed]
    if len(latencies) < len(handed):
        raise RuntimeError(f"{what}: {len(handed) - len(latencies)} of {len(handed)} "
                           "messages never arrived")
    return {"messages": len(handed), "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99), "max_ms": max(latencies)}


def bench(settings: Settings) -> Outcome:
    seconds = 20.0 if not settings.quick else 1.0
    with sink(record=True) as url:
        single = run(url, seconds, batch=False)
        batched = run(url, seconds, batch=True)
    rows = [
        Row("latency", f"p50, 1 msg/request at {RATE:,} msg/s", "ms", single["p50_ms"]),
        Row("latency", f"p99, 1 msg/request at {RATE:,} msg/s", "ms", single["p99_ms"],
            target=f"< {TARGET_P99_MS:g} ms", met=single["p99_ms"] < TARGET_P99_MS),
        Row("latency", f"p50, batched at {RATE:,} msg/s", "ms", batched["p50_ms"]),
        Row("latency", f"p99, batched at {RATE:,} msg/s", "ms", batched["p99_ms"],
            target=f"< {TARGET_P99_MS:g} ms", met=batched["p99_ms"] < TARGET_P99_MS),
    ]
    return Outcome(rows=rows, detail={"rate": RATE, "duration_s": seconds, "single": single,
                                      "batched": batched})
