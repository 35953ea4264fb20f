"""Memory: peak RSS of a fresh process (a) accepting enough messages to queue 1,000,000 outbox
rows (250,000 messages x 4 destinations), (b) a daemon's delivery engine starting with those
1,000,000 rows queued and draining them (batched, to the sink) for a fixed time, (c) as a
baseline, an idle process that imported the same modules. Each runs in its own subprocess
(python -m bench.memory <phase>), so no figure inherits another's heap; peak RSS is the
kernel's high-water mark (VmHWM) of that process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DESTINATIONS, Outcome, Row, Settings, run_json, sink
from bench.common import sample_message as message
from bench.common import webhook_config as config

TARGET_MB = 300.0


def peak_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork+exec, so a child of a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def fill(db: Path, rows: int) -> dict[str, Any]:
    from crossdock.outbox.sqlite import SQLiteOutbox
    from crossdock.pipeline import Pipeline

    outbox = SQLiteOutbox(db)
    loaded = config(db, "http://127.0.0.1:9/hook")
    pipeline = Pipeline(loaded, outbox)
    messages = rows // len(DESTINATIONS)
    result = pipeline.accept_iter(message(i) for i in range(messages))
    queued = sum(c.queued for c in outbox.counts().values())
    outbox.close()
    return {"rows": result.rows, "queued": queued, "peak_rss_mb": peak_mb()}


def drain(db: Path, url: str, seconds: float) -> dict[str, Any]:
    from crossdock.delivery import DeliveryEngine
    from crossdock.outbox.sqlite import SQLiteOutbox

    outbox = SQLiteOutbox(db)
    loaded = config(db, f"{url}/hook", batch=True)
    queued_before = sum(c.queued for c in outbox.counts().values())
    samples: list[float] = []

    async def main() -> None:
        engine = DeliveryEngine(loaded, outbox)
        await engine.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples.append(current_mb())
            if engine.report.delivered >= queued_before:
                break
            await asyncio.sleep(0.25)
        await engine.stop()

    start = time.perf_counter()
    asyncio.run(main())
    took = time.perf_counter() - start
    counts = outbox.counts()
    outbox.close()
    delivered = sum(c.delivered for c in counts.values())
    return {"queued_at_start": queued_before, "delivered": delivered, "seconds": took,
            "delivered_per_s": delivered / took, "peak_rss_mb": peak_mb(),
            "median_sampled_rss_mb": sorted(samples)[len(samples) // 2] if samples else 0.0}


def idle() -> dict[str, Any]:
    import crossdock.delivery
    import crossdock.outbox.sqlite
    import crossdock.pipeline  # noqa: F401

    return {"peak_rss_mb": peak_mb()}


def bench(settings: Settings) -> Outcome:
    rows = settings.size(1_000_000, 2_000)
    seconds = 45.0 if not settings.quick else 5.0
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "memory.db")
        base = run_json("bench.memory", "idle")
        filled = run_json("bench.memory", "fill", db, str(rows))
        with sink() as url:
            drained = run_json("bench.memory", "drain", db, url, str(seconds))
    queued_mb = drained["peak_rss_mb"]
    out = [
        Row("memory", f"peak RSS accepting {filled['rows']:,} rows", "MB",
            filled["peak_rss_mb"], base["peak_rss_mb"], "idle process, same imports"),
        Row("memory", f"peak RSS draining with {drained['queued_at_start']:,} rows queued",
            "MB", queued_mb, base["peak_rss_mb"], "idle process, same imports",
            f"< {TARGET_MB:g} MB", queued_mb < TARGET_MB),
    ]
    return Outcome(rows=out, detail={"queued_rows": rows, "idle": base, "fill": filled,
                                     "drain": drained})


if __name__ == "__main__":
    phase = sys.argv[1]
    if phase == "fill":
        out = fill(Path(sys.argv[2]), int(sys.argv[3]))
    elif phase == "drain":
        out = drain(Path(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    else:
        out = idle()
    print(json.dumps(out))
