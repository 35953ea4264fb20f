"""Route: messages through accept -> route -> outbox with 4 destinations enabled, against a bare
`executemany` of the same number of rows into the same outbox table, one transaction per batch.

Both sides write to a fresh SQLite file (WAL, synchronous=NORMAL, the outbox's own schema and
indexes); the ratio is outbox rows per second, ours over raw.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import (
    DESTINATIONS,
    Outcome,
    Row,
    Settings,
    elapsed,
    inputs_frozen,
    interleaved,
    sample_message,
    webhook_config,
)
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import DEFAULT_CHUNK, Pipeline

TARGET = 0.50


def run_pipeline(messages: int) -> tuple[int, float]:
    raws = [sample_message(i) for i in range(messages)]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "route.db"
        outbox = SQLiteOutbox(db)
        loaded = webhook_config(db, "http://127.0.0.1:9/hook")
        pipeline = Pipeline(loaded, outbox)
        with inputs_frozen():
            start = time.perf_counter()
            result = pipeline.accept_iter(raws, chunk_size=DEFAULT_CHUNK)
            seconds = elapsed(start)
        outbox.close()
    if result.rows != messages * len(DESTINATIONS):
        raise RuntimeError(f"route: expected {messages * len(DESTINATIONS)} rows, "
                           f"wrote {result.rows} ({result.errors[:1]})")
    return result.rows, seconds


def run_raw(messages: int) -> tuple[int, float]:
    """Rows built in advance (the message JSON as payload); only the inserts are timed."""
    now = time.time()
    batches = []
    for start in range(0, messages, DEFAULT_CHUNK):
        batches.append([
            (name, f"bench-{i}", json.dumps(sample_message(i), separators=(",", ":")),
             now, now, now)
            for i in range(start, min(start + DEFAULT_CHUNK, messages))
            for name in DESTINATIONS
        ])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "raw.db"
        SQLiteOutbox(db).close()  # the same schema and indexes
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        rows = 0
        with inputs_frozen():
            start_t = time.perf_counter()
            for batch in batches:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO outbox (destination, message_id, payload, next_attempt_at, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)", batch)
                conn.execute("COMMIT")
                rows += len(batch)
            seconds = elapsed(start_t)
        conn.close()
    return rows, seconds


def bench(settings: Settings) -> Outcome:
    messages = settings.size(20_000, 500)
    rates = interleaved({"ours": lambda: run_pipeline(messages),
                         "raw": lambda: run_raw(messages)}, settings.repeats)
    ratio = rates["ours"] / rates["raw"]
    return Outcome(
        rows=[Row("route", "accept -> route -> outbox, 4 destinations", "rows/s", rates["ours"],
                  rates["raw"], "bare executemany", f">= {TARGET:.0%}", ratio >= TARGET)],
        detail={"messages": messages, "destinations": len(DESTINATIONS),
                "rows_per_s": rates["ours"], "raw_rows_per_s": rates["raw"],
                "messages_per_s": rates["ours"] / len(DESTINATIONS), "ratio": ratio},
    )
