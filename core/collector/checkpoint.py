"""WAL checkpoints off the request path, for a collector on a SQLite outbox.

SQLite copies the write-ahead log back into the database file (a checkpoint) inside the COMMIT
that pushes the log past `wal_autocheckpoint` pages, and with `synchronous = NORMAL` that copy
fsyncs the log and the database file. A request whose commit happened to be that one waited
for two fsyncs (10-20 ms), a large share of a small request's time on the collector's
/v1/track (docs/benchmarks.md).

`WalCheckpointer` turns the automatic checkpoint off on the outbox's connection and runs
`PRAGMA wal_checkpoint(PASSIVE)` from a thread of its own, on its own connection, every
`interval` seconds. Durability does not change: a commit is exactly as durable as before (in
the log, `synchronous` as the outbox set it), and the checkpoint syncs as SQLite's own does
(the log before the copy, the database file after; never with `synchronous = OFF`). A passive
checkpoint never blocks a writer, so under sustained load it may not catch up with the frames
appended meanwhile, and the log would only grow; once it holds `max_pages` frames the next
checkpoint runs holding the outbox's in-process lock (between two transactions), which
completes it and lets the next writer start the log over.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from contextlib import AbstractContextManager
from typing import Any

from crossdock.outbox.sqlite import SQLiteOutbox

log = logging.getLogger("crossdock.collector")

#: SQLite's default for wal_autocheckpoint, restored by `stop`
DEFAULT_AUTOCHECKPOINT = 1000
#: rounds without the lock after a locked checkpoint still left frames behind
BACK_OFF_ROUNDS = 25


class WalCheckpointer:
    """Checkpoints one SQLite outbox's WAL from a background thread (see the module doc)."""

    def __init__(self, outbox: SQLiteOutbox, *, interval: float = 0.2,
                 max_pages: int = 4000) -> None:
        self.outbox = outbox
        self.path: str = outbox.path
        self.interval = interval
        self.max_pages = max_pages
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        synchronous = _pragma(outbox, "synchronous")
        # The checkpoint syncs by its own connection's setting: never less than NORMAL.
        self.synchronous = max(1, int(synchronous if synchronous is not None else 2))

    @classmethod
    def attach(cls, outbox: SQLiteOutbox, *, interval: float = 0.2,
               max_pages: int = 4000) -> WalCheckpointer | None:
        """A started checkpointer for a file-backed SQLite outbox in WAL mode, else None."""
        if (outbox.path == ":memory:"
                or str(_pragma(outbox, "journal_mode")).lower() != "wal"):
            return None
        checkpointer = cls(outbox, interval=interval, max_pages=max_pages)
        checkpointer.start()
        return checkpointer

    def start(self) -> None:
        _set_autocheckpoint(self.outbox, 0)
        stop = self._stop
        # The thread holds no reference to the checkpointer: dropping it stops the thread.
        self._thread = threading.Thread(
            target=_run, name="crossdock-wal-checkpoint", daemon=True,
            args=(self.path, self.synchronous, self.interval, self.max_pages,
                  self.outbox.lock, stop),
        )
        self._thread.start()
        weakref.finalize(self, stop.set)

    def stop(self) -> None:
        """Stop the thread (after a last checkpoint) and give the outbox's connection its
        automatic checkpoints back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        _set_autocheckpoint(self.outbox, DEFAULT_AUTOCHECKPOINT)


def _pragma(outbox: SQLiteOutbox, name: str) -> Any:
    try:
        row = outbox.db.conn.execute(f"PRAGMA {name}").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else row[0]


def _set_autocheckpoint(outbox: SQLiteOutbox, pages: int) -> None:
    try:
        with outbox.lock:
            outbox.db.conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")
    except sqlite3.Error:  # the outbox was closed already: nothing left to checkpoint
        pass


def _run(path: str, synchronous: int, interval: float, max_pages: int,
         lock: AbstractContextManager[object],
         stop: threading.Event) -> None:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    except sqlite3.Error as exc:
        log.warning("WAL checkpoints: cannot open %s (%s); none will run", path, exc)
        return
    try:
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        held_back = 0  # rounds left without the lock, after a locked round did not finish
        while True:
            stopping = stop.wait(interval)
            try:
                if not _checkpoint(conn, max_pages, None if held_back else lock):
                    held_back = BACK_OFF_ROUNDS
                elif held_back:
                    held_back -= 1
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint of %s failed: %s", path, exc)
            if stopping:
                return
    finally:
        conn.close()


def _checkpoint(conn: sqlite3.Connection, max_pages: int,
                lock: AbstractContextManager[object] | None) -> bool:
    """One passive checkpoint, finished under `lock` when the log is long and the copy could
    not keep up; False when even that left frames behind (a reader elsewhere holds an old
    snapshot: waiting for it under the lock would only stall this process's writers)."""
    _busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames < max_pages or done >= frames or lock is None:
        return True
    # Writers kept appending while the copy ran: finish it between two transactions.
    with lock:
        _busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return done >= frames
