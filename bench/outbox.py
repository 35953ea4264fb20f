"""Outbox: lease + ack rows per second (SQLiteOutbox.lease(100) then ack, until empty), against
a bare loop of one claiming `UPDATE ... RETURNING` (100 rows) and one `DELETE ... WHERE id IN
(...)` per batch on the same table: the fastest raw form with the same library and durability.

The rows carry their person (as the pipeline writes them: 5,000 people), and the lease is
ordered, the default; the second row is the same loop leasing unordered (`ordered: false`),
in the same run, so the ratio between them is what per-person order costs. The third is the
cleanup of as many delivered rows while another connection commits a row every few
milliseconds (the collector): the longest that writer waited, our chunked cleanup against one
DELETE transaction; the file's size before and after is in the JSON.

What the indexes `counts()` reads (migration m008: outbox_waiting, outbox_retrying,
outbox_dead_recent, outbox_dead) cost the hot path: lease + ack, and enqueue in batches of
100, each against the same run on an outbox with those indexes dropped (the delivered tally
kept at ack is in both).
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Outcome, Row, Settings, elapsed, interleaved, sample_message
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox

TARGET = 0.70
BATCH = 100
DEST = "hook-a"
#: seconds between the concurrent writer's commits while cleanup runs
WRITER_PAUSE = 0.002
#: the indexes of migration m008 that keep `counts()` and the dead-letter list fast
COUNTS_INDEXES = ("outbox_waiting", "outbox_retrying", "outbox_dead_recent", "outbox_dead")
#: rows per enqueue (about what the collector commits at once under load)
ENQUEUE_BATCH = 100


def _drop_counts_indexes(outbox: SQLiteOutbox) -> None:
    with outbox.transaction() as tx:
        for name in COUNTS_INDEXES:
            tx.execute(f"DROP INDEX {name}")


def _filled(tmp: str, rows: int) -> Path:
    db = Path(tmp) / "outbox.db"
    outbox = SQLiteOutbox(db)
    outbox.enqueue([NewRow(DEST, f"bench-{i}", message, f"p:{message['userId']}")
                    for i in range(rows) for message in [sample_message(i)]],
                   now=time.time() - 1)
    outbox.close()
    return db


def _drain(outbox: SQLiteOutbox, ordered: bool) -> int:
    done = 0
    while items := outbox.lease(DEST, BATCH, 60.0, "bench", ordered=ordered):
        outbox.ack([item.id for item in items], "bench")
        done += len(items)
    return done


def run_ours(rows: int, ordered: bool = True, counts_indexes: bool = True,
             cpu: list[float] | None = None) -> tuple[int, float]:
    """Wall-clock seconds; the CPU seconds of the same section go to `cpu` when given."""
    with tempfile.TemporaryDirectory() as tmp:
        outbox = SQLiteOutbox(_filled(tmp, rows))
        if not counts_indexes:
            _drop_counts_indexes(outbox)
        start, cpu_start = time.perf_counter(), time.process_time()
        done = _drain(outbox, ordered)
        seconds = elapsed(start)
        if cpu is not None:
            cpu.append(time.process_time() - cpu_start)
        outbox.close()
    if done != rows:
        raise RuntimeError(f"outbox: leased {done} of {rows} rows")
    return done, seconds


def run_enqueue(rows: int, counts_indexes: bool = True) -> tuple[int, float]:
    new = [NewRow(DEST, f"bench-{i}", message, f"p:{message['userId']}")
           for i in range(rows) for message in [sample_message(i)]]
    with tempfile.TemporaryDirectory() as tmp:
        outbox = SQLiteOutbox(Path(tmp) / "outbox.db")
        if not counts_indexes:
            _drop_counts_indexes(outbox)
        start = time.perf_counter()
        for at in range(0, rows, ENQUEUE_BATCH):
            outbox.enqueue(new[at:at + ENQUEUE_BATCH])
        seconds = elapsed(start)
        outbox.close()
    return rows, seconds


def run_raw(rows: int, cpu: list[float] | None = None) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(_filled(tmp, rows), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        done = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        while True:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            found = conn.execute(
                "UPDATE outbox SET state = 'leased', next_attempt_at = ? WHERE id IN ("
                "SELECT id FROM outbox WHERE destination = ? AND state = 'queued' "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?) "
                "RETURNING id, payload", [now + 60, DEST, now, BATCH]).fetchall()
            conn.execute("COMMIT")
            if not found:
                break
            # One statement for the batch, as ours settles it (an executemany of one DELETE
            # per id was a weaker baseline and flattered the ratio).
            ids = [r[0] for r in found]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))})", ids)
            conn.execute("COMMIT")
            done += len(found)
        seconds = elapsed(start)
        if cpu is not None:
            cpu.append(time.process_time() - cpu_start)
        conn.close()
    if done != rows:
        raise RuntimeError(f"outbox raw: claimed {done} of {rows} rows")
    return done, seconds


# -- cleanup while a writer commits -----------------------------------------------------


def _size_mb(db: Path) -> float:
    wal = db.with_name(db.name + "-wal")
    return (db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 1e6


def _longest_wait(db: Path, cleanup: Callable[[], None]) -> float:
    """Seconds the longest commit of a concurrent writer (its own connection) took while
    `cleanup` ran."""
    stop = threading.Event()
    waits: list[float] = []

    def write() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=60)
        n = 0
        while not stop.is_set():
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO outbox (destination, message_id, payload, "
                         "next_attempt_at, created_at, updated_at) VALUES ('w', ?, '{}', 0, 0, 0)",
                         [f"w{time.time_ns()}-{n}"])
            conn.execute("COMMIT")
            waits.append(time.perf_counter() - start)
            n += 1
            time.sleep(WRITER_PAUSE)
        conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.05)
    try:
        cleanup()
    finally:
        stop.set()
        writer.join()
    return max(waits)


def run_cleanup(rows: int, chunked: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = _filled(tmp, rows)
        outbox = SQLiteOutbox(db)
        _drain(outbox, ordered=False)
        before = _size_mb(db)
        if chunked:
            def cleanup() -> None:
                outbox.cleanup(time.time() + 1)
        else:
            def cleanup() -> None:  # what cleanup was: one DELETE in one transaction
                with outbox.transaction() as tx:
                    tx.execute("DELETE FROM outbox WHERE state = 'delivered' AND updated_at < ?",
                               [time.time() + 1])
        longest = _longest_wait(db, cleanup)
        after = _size_mb(db)
        outbox.close()
    return {"longest_wait_ms": longest * 1000, "mb_before": before, "mb_after": after}


def bench(settings: Settings) -> Outcome:
    rows = settings.size(30_000, 500)
    # CPU time beside the wall clock: on a shared machine either side may lose the core for
    # a while, which moves the wall-clock ratio by several points and the CPU one much less.
    cpu: dict[str, list[float]] = {"ours": [], "raw": []}
    rates = interleaved({"ours": lambda: run_ours(rows, cpu=cpu["ours"]),
                         "unordered": lambda: run_ours(rows, ordered=False),
                         "raw": lambda: run_raw(rows, cpu=cpu["raw"]),
                         "no_counts_indexes": lambda: run_ours(rows, counts_indexes=False),
                         "enqueue": lambda: run_enqueue(rows),
                         "enqueue_no_counts_indexes": lambda: run_enqueue(
                             rows, counts_indexes=False)},
                        settings.repeats)
    ratio = rates["ours"] / rates["raw"]
    cpu_rates = {name: rows / statistics.median(seconds) for name, seconds in cpu.items()}
    forgotten = settings.size(200_000, 1000)
    chunked = run_cleanup(forgotten, chunked=True)
    single = run_cleanup(forgotten, chunked=False)
    return Outcome(
        rows=[Row("outbox", f"lease({BATCH}) + ack", "rows/s", rates["ours"], rates["raw"],
                  "bare UPDATE..RETURNING / DELETE..IN", f">= {TARGET:.0%}", ratio >= TARGET),
              Row("outbox", f"lease({BATCH}) + ack, CPU time", "rows/CPU-s", cpu_rates["ours"],
                  cpu_rates["raw"], "bare UPDATE..RETURNING / DELETE..IN, CPU time"),
              Row("outbox", f"ordered lease({BATCH}) + ack, 5,000 people", "rows/s",
                  rates["ours"], rates["unordered"], "the same, unordered"),
              Row("outbox", f"lease({BATCH}) + ack, with the counts' indexes (m008)",
                  "rows/s", rates["ours"], rates["no_counts_indexes"],
                  "the same, those indexes dropped"),
              Row("outbox", f"enqueue({ENQUEUE_BATCH}), with the counts' indexes (m008)",
                  "rows/s", rates["enqueue"], rates["enqueue_no_counts_indexes"],
                  "the same, those indexes dropped"),
              Row("outbox", f"cleanup of {forgotten:,} delivered rows: a writer's longest "
                  "commit", "ms", chunked["longest_wait_ms"], single["longest_wait_ms"],
                  "one DELETE transaction")],
        detail={"leased_rows": rows, "batch": BATCH, "rows_per_s": rates["ours"],
                "unordered_rows_per_s": rates["unordered"],
                "raw_rows_per_s": rates["raw"], "ratio": ratio,
                "rows_per_cpu_s": cpu_rates["ours"], "raw_rows_per_cpu_s": cpu_rates["raw"],
                "cpu_ratio": cpu_rates["ours"] / cpu_rates["raw"],
                "no_counts_indexes_rows_per_s": rates["no_counts_indexes"],
                "enqueue_rows_per_s": rates["enqueue"],
                "enqueue_no_counts_indexes_rows_per_s": rates["enqueue_no_counts_indexes"],
                "cleanup": {"rows": forgotten, "chunked": chunked, "one_transaction": single}},
    )
