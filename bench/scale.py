"""Scale: the one-message-per-request delivery benchmark with more workers, as a ratio to one.

(a) delivery concurrency 1, 2 and 4 in one process (slots of one destination's worker);
(b) 1, 2 and 4 delivery processes (`python -m bench.scale <db> <url>`, each a deliver_once
    with concurrency 4) sharing one SQLite outbox file, as several daemons on one machine
    would. The PostgreSQL outbox (many daemons on many machines) is not part of this run.

Processes import and open the outbox first, then wait for "go" on stdin, so the timing covers
delivery only.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Outcome, Row, Settings, child_env, elapsed, sink
from bench.delivery import BATCH, DEST, fill, run_ours, webhook_config_one

LEVELS = (1, 2, 4)


def run_processes(url: str, messages: int, count: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.db"
        fill(db, messages)
        procs = [subprocess.Popen([sys.executable, "-m", "bench.scale", str(db), url], cwd=ROOT,
                                  env=child_env(), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for _ in range(count)]
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "READY":
                raise RuntimeError("scale worker did not start")
        start = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        delivered = 0
        for p in procs:
            out, _ = p.communicate(timeout=600)
            delivered += json.loads(out.strip().splitlines()[-1])["delivered"]
        seconds = elapsed(start)
    if delivered != messages:
        raise RuntimeError(f"scale: {count} processes delivered {delivered} of {messages}")
    return delivered, seconds


def worker(db: str, url: str) -> None:
    from crossdock.delivery import deliver_once, make_client
    from crossdock.outbox.sqlite import SQLiteOutbox

    loaded = webhook_config_one(Path(db), url, batch=False, concurrency=4)
    outbox = SQLiteOutbox(db)
    print("READY", flush=True)
    sys.stdin.readline()

    async def main() -> int:
        client = make_client(max_connections=100)
        try:
            report = await deliver_once(loaded, outbox, client=client)
        finally:
            await client.aclose()
        return report.delivered

    print(json.dumps({"delivered": asyncio.run(main())}), flush=True)


def bench(settings: Settings) -> Outcome:
    messages = settings.size(4_000, 100)
    slots: dict[int, list[float]] = {n: [] for n in LEVELS}
    procs: dict[int, list[float]] = {n: [] for n in LEVELS}
    with sink() as url:
        for _ in range(settings.repeats):
            for n in LEVELS:
                items, seconds = run_ours(url, messages, batch=False, fast=True, concurrency=n)
                slots[n].append(items / seconds)
                items, seconds = run_processes(url, messages, n)
                procs[n].append(items / seconds)
    med = {n: sorted(v)[len(v) // 2] for n, v in slots.items()}
    pmed = {n: sorted(v)[len(v) // 2] for n, v in procs.items()}
    rows = [Row("scale", f"concurrency {n}, 1 msg/request", "msg/s", med[n], med[1],
                "concurrency 1") for n in LEVELS[1:]]
    rows += [Row("scale", f"{n} delivery processes, one SQLite outbox", "msg/s", pmed[n],
                 pmed[1], "1 process") for n in LEVELS[1:]]
    return Outcome(rows=rows, detail={
        "messages": messages, "batch_size": BATCH, "destination": DEST,
        "concurrency_msg_per_s": {str(n): med[n] for n in LEVELS},
        "processes_msg_per_s": {str(n): pmed[n] for n in LEVELS},
        "note": "PostgreSQL multi-daemon scale not measured (PostgreSQL outbox not in this run)",
    })


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
