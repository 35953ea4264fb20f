"""The collector's WAL checkpoints run beside the requests, not inside their COMMIT."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from crossdock.collector.checkpoint import DEFAULT_AUTOCHECKPOINT, WalCheckpointer
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox


def autocheckpoint(outbox: SQLiteOutbox) -> int:
    return int(outbox.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def test_checkpoints_move_to_a_thread_and_come_back_on_stop(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "o.db")
    checkpointer = WalCheckpointer.attach(outbox, interval=0.01)
    assert checkpointer is not None
    try:
        assert autocheckpoint(outbox) == 0
        with outbox.transaction():
            outbox.enqueue([NewRow("d", f"m{i}", {"x": "y" * 500}) for i in range(200)])
        # The thread copies the log back: a later checkpoint finds every frame done.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _busy, frames, done = outbox.db.conn.execute(
                "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames == done:
                break
            time.sleep(0.01)
        assert frames == done
    finally:
        checkpointer.stop()
    assert autocheckpoint(outbox) == DEFAULT_AUTOCHECKPOINT
    outbox.close()


def test_no_checkpointer_for_an_in_memory_outbox() -> None:
    outbox = SQLiteOutbox(":memory:")
    assert WalCheckpointer.attach(outbox) is None
    outbox.close()


def test_a_long_log_is_finished_under_the_outbox_lock(tmp_path: Path) -> None:
    from crossdock.collector import checkpoint

    outbox = SQLiteOutbox(tmp_path / "o.db")
    outbox.db.conn.execute("PRAGMA wal_autocheckpoint = 0")
    with outbox.transaction():
        outbox.enqueue([NewRow("d", f"m{i}", {"x": "y" * 500}) for i in range(200)])
    conn = sqlite3.connect(outbox.path, isolation_level=None)
    try:
        assert checkpoint._checkpoint(conn, max_pages=1, lock=outbox._lock)
        _busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    assert frames > 0
    assert frames == done
    outbox.close()
