"""Outbox: lease + ack rows per second (SQLiteOutbox.lease(100) then ack, until empty), against
a bare loop of `UPDATE ... RETURNING` (claim 100 rows) and `DELETE` (by id) on the same table.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import Outcome, Row, Settings, elapsed, interleaved, sample_message
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox

TARGET = 0.60
BATCH = 100
DEST = "hook-a"


def _filled(tmp: str, rows: int) -> Path:
    db = Path(tmp) / "outbox.db"
    outbox = SQLiteOutbox(db)
    outbox.enqueue([NewRow(DEST, f"bench-{i}", sample_message(i)) for i in range(rows)],
                   now=time.time() - 1)
    outbox.close()
    return db


def run_ours(rows: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        outbox = SQLiteOutbox(_filled(tmp, rows))
        done = 0
        start = time.perf_counter()
        while items := outbox.lease(DEST, BATCH, 60.0, "bench"):
            outbox.ack([item.id for item in items])
            done += len(items)
        seconds = elapsed(start)
        outbox.close()
    if done != rows:
        raise RuntimeError(f"outbox: leased {done} of {rows} rows")
    return done, seconds


def run_raw(rows: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(_filled(tmp, rows), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        done = 0
        start = time.perf_counter()
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
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(r[0],) for r in found])
            conn.execute("COMMIT")
            done += len(found)
        seconds = elapsed(start)
        conn.close()
    if done != rows:
        raise RuntimeError(f"outbox raw: claimed {done} of {rows} rows")
    return done, seconds


def bench(settings: Settings) -> Outcome:
    rows = settings.size(30_000, 500)
    rates = interleaved({"ours": lambda: run_ours(rows), "raw": lambda: run_raw(rows)},
                        settings.repeats)
    ratio = rates["ours"] / rates["raw"]
    return Outcome(
        rows=[Row("outbox", f"lease({BATCH}) + ack", "rows/s", rates["ours"], rates["raw"],
                  "bare UPDATE..RETURNING / DELETE", f">= {TARGET:.0%}", ratio >= TARGET)],
        detail={"leased_rows": rows, "batch": BATCH, "rows_per_s": rates["ours"],
                "raw_rows_per_s": rates["raw"], "ratio": ratio},
    )
