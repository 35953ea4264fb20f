"""The embedded outbox: one SQLite file in WAL mode, shared by the daemon and `crossdock send`.

Every write runs in `BEGIN IMMEDIATE` (see migrations.immediate) with a busy timeout, so a
second process writing the same file waits for the lock instead of failing. A leased row keeps
its lease expiry in `next_attempt_at` as well as in `lease_expires_at`: the one index
(destination, state, next_attempt_at) then finds due queued rows and abandoned leases alike.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from crossdock.destination import OutboxItem
from crossdock.errors import OutboxError
from crossdock.outbox.base import (
    DeadLetter,
    DestinationCounts,
    NewRow,
    OutboxBase,
    dead_letters_from,
    decoded_row,
    dropped_by_destination,
    tally_counts,
)
from crossdock.outbox.migrations import immediate, upgrade
from crossdock.outbox.payload_json import encode_payload

# Rows per multi-row INSERT: 6 parameters each stays far below SQLite's 32766 variables.
_INSERT_CHUNK = 1000
_INSERT_SQL = (
    "INSERT OR IGNORE INTO outbox "
    "(destination, message_id, payload, next_attempt_at, created_at, updated_at) VALUES "
)
_ROW_SQL = "(?, ?, ?, ?, ?, ?)"
_LEASED_CLEAR = "lease_owner = NULL, lease_expires_at = NULL"


class SQLiteOutbox(OutboxBase):
    """The `Outbox` contract on one SQLite file (see base.py for the row states)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        if self.path != ":memory:" and not Path(self.path).parent.is_dir():
            raise OutboxError(f"{self.url}: folder {Path(self.path).parent} does not exist")
        try:
            # isolation_level=None: no implicit BEGINs; every transaction here is explicit.
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self.db = Database(conn)
            #: names of the migrations this open applied (empty when already up to date)
            self.migrated = upgrade(self.db)
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.url}: cannot open the outbox ({exc})") from exc
        # One connection may be shared by the event loop and a thread pool (the collector):
        # the lock keeps a transaction's statements together.
        self._lock = threading.RLock()

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error. Inside it, `enqueue` and the
        profile store's writes (through `.db`) commit together; nested use joins it."""
        with self._lock, immediate(self.db) as db:
            yield db

    # -- writing (enqueue, enqueue_new, retry and dead: OutboxBase) -----------------------

    def _insert(self, rows: Sequence[NewRow], now: float | None) -> list[tuple[str, str]]:
        if not rows:
            return []
        now = time.time() if now is None else now
        inserted: list[tuple[str, str]] = []
        with self.transaction() as db:
            conn = db.conn
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start:start + _INSERT_CHUNK]
                params: list[Any] = []
                for row in chunk:
                    params += (row.destination, row.message_id, encode_payload(row.payload),
                               now, now, now)
                sql = (_INSERT_SQL + ",".join([_ROW_SQL] * len(chunk))
                       + " RETURNING destination, message_id")
                inserted += conn.execute(sql, params).fetchall()
            dropped = dropped_by_destination(rows, inserted)
            if dropped:
                conn.executemany(
                    "INSERT INTO outbox_stats (destination, dropped_attributes) VALUES (?, ?) "
                    "ON CONFLICT (destination) DO UPDATE SET "
                    "dropped_attributes = dropped_attributes + excluded.dropped_attributes",
                    list(dropped.items()),
                )
        return inserted

    def lease(
        self, destination: str, limit: int, lease_seconds: float, owner: str,
        now: float | None = None,
    ) -> list[OutboxItem]:
        """Claim up to `limit` due rows (queued and due, or leased with an expired lease),
        oldest due first; attempts go up by one. A row whose payload is not valid JSON goes
        to the dead letters instead of stopping the worker."""
        now = time.time() if now is None else now
        expires = now + lease_seconds
        with self.transaction() as db:
            found = db.conn.execute(
                """
                UPDATE outbox SET state = 'leased', attempts = attempts + 1, lease_owner = ?,
                    lease_expires_at = ?, next_attempt_at = ?, updated_at = ?
                WHERE id IN (
                    SELECT id FROM outbox
                    WHERE destination = ? AND state IN ('queued', 'leased')
                      AND next_attempt_at <= ?
                    ORDER BY next_attempt_at, id LIMIT ?
                )
                RETURNING id, message_id, payload, attempts, created_at
                """,
                [owner, expires, expires, now, destination, now, limit],
            ).fetchall()
            return self._leased(found, now)

    def ack(self, ids: Sequence[int], now: float | None = None) -> None:
        """Mark leased rows delivered (one statement for the whole batch)."""
        if not ids:
            return
        now = time.time() if now is None else now
        ids = list(ids)
        with self.transaction() as db:
            # One statement per chunk instead of one per id: about twice the acks per second.
            for start in range(0, len(ids), _INSERT_CHUNK):
                chunk = ids[start:start + _INSERT_CHUNK]
                db.conn.execute(
                    f"UPDATE outbox SET state = 'delivered', {_LEASED_CLEAR}, updated_at = ? "
                    f"WHERE id IN ({','.join('?' * len(chunk))}) AND state = 'leased'",
                    [now, *chunk],
                )

    def _write_failures(self, failures: Sequence[tuple[int, str, float | None]],
                        now: float) -> None:
        retries = [(due, error, now, id_) for id_, error, due in failures if due is not None]
        deads = [(error, now, id_) for id_, error, due in failures if due is None]
        with self.transaction() as db:
            if retries:
                db.conn.executemany(
                    "UPDATE outbox SET state = 'queued', next_attempt_at = ?, last_error = ?, "
                    f"{_LEASED_CLEAR}, updated_at = ? WHERE id = ? AND state = 'leased'",
                    retries,
                )
            if deads:
                db.conn.executemany(
                    f"UPDATE outbox SET state = 'dead', last_error = ?, {_LEASED_CLEAR}, "
                    "updated_at = ? WHERE id = ?",
                    deads,
                )
            # The latest error per destination, for `crossdock status`; kept in
            # outbox_stats so the status query never scans rows.
            id_, error, _ = failures[-1]
            db.conn.execute(
                """
                INSERT INTO outbox_stats (destination, last_error, last_error_at)
                SELECT destination, ?, ? FROM outbox WHERE id = ?
                ON CONFLICT (destination) DO UPDATE SET
                    last_error = excluded.last_error, last_error_at = excluded.last_error_at
                """,
                [error, now, id_],
            )

    def release(self, ids: Sequence[int], now: float | None = None) -> None:
        """Give leased rows back unattempted (a worker stopping before it sent them)."""
        if not ids:
            return
        now = time.time() if now is None else now
        with self.transaction() as db:
            db.conn.executemany(
                "UPDATE outbox SET state = 'queued', attempts = MAX(attempts - 1, 0), "
                f"next_attempt_at = ?, {_LEASED_CLEAR}, updated_at = ? "
                "WHERE id = ? AND state = 'leased'",
                [(now, now, id_) for id_ in ids],
            )

    def replay(self, destination: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Put dead letters back in the queue with fresh attempts and a fresh age (see
        `Outbox.replay`); returns how many."""
        now = time.time()
        where, params = self._dead_filter(destination, ids)
        with self.transaction() as db:
            cursor = db.conn.execute(
                "UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ?, "
                f"{_LEASED_CLEAR}, created_at = ?, updated_at = ? WHERE {where}",
                [now, now, now, *params],
            )
            return cursor.rowcount

    @staticmethod
    def _dead_filter(
        destination: str | None, ids: Sequence[int] | None
    ) -> tuple[str, list[Any]]:
        where = ["state = 'dead'"]
        params: list[Any] = []
        if destination is not None:
            where.append("destination = ?")
            params.append(destination)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params += list(ids)
        return " AND ".join(where), params

    def cleanup(self, delivered_before: float) -> int:
        """Forget delivered rows last updated before a time; their count is kept."""
        with self.transaction() as db:
            conn = db.conn
            per_destination = conn.execute(
                "SELECT destination, COUNT(*) FROM outbox "
                "WHERE state = 'delivered' AND updated_at < ? GROUP BY destination",
                [delivered_before],
            ).fetchall()
            if not per_destination:
                return 0
            conn.executemany(
                "INSERT INTO outbox_stats (destination, delivered_forgotten) VALUES (?, ?) "
                "ON CONFLICT (destination) DO UPDATE SET "
                "delivered_forgotten = delivered_forgotten + excluded.delivered_forgotten",
                per_destination,
            )
            conn.execute(
                "DELETE FROM outbox WHERE state = 'delivered' AND updated_at < ?",
                [delivered_before],
            )
            return sum(n for _, n in per_destination)

    # -- reading ------------------------------------------------------------------------

    def next_due(self, destination: str) -> float | None:
        """When the earliest queued row of a destination is due, or a lease expires (None:
        nothing queued or leased)."""
        with self._lock:
            row = self.db.conn.execute(
                "SELECT MIN(next_attempt_at) FROM outbox "
                "WHERE destination = ? AND state IN ('queued', 'leased')",
                [destination],
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def counts(self) -> dict[str, DestinationCounts]:
        """Per destination: queued, leased, retrying, delivered (with forgotten ones), dead,
        the last error and the attributes the route step dropped."""
        with self._lock:
            grouped = self.db.conn.execute(
                "SELECT destination, state, COUNT(*), SUM(attempts > 0), MIN(created_at) "
                "FROM outbox GROUP BY destination, state"
            ).fetchall()
            stats = self.db.conn.execute(
                "SELECT destination, delivered_forgotten, dropped_attributes, last_error, "
                "last_error_at FROM outbox_stats"
            ).fetchall()
        return tally_counts(grouped, stats)

    def dead_letters(self, destination: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters first, with their reasons and payloads."""
        where, params = self._dead_filter(destination, None)
        with self._lock:
            rows = self.db.conn.execute(
                "SELECT id, destination, message_id, attempts, last_error, updated_at, payload "
                f"FROM outbox WHERE {where} ORDER BY updated_at DESC, id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
        return dead_letters_from(rows)

    def row(self, destination: str, message_id: str) -> dict[str, Any] | None:
        """One row as a dict (payload decoded), for inspection and tests."""
        with self._lock:
            cursor = self.db.conn.execute(
                "SELECT * FROM outbox WHERE destination = ? AND message_id = ?",
                [destination, message_id],
            )
            found = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        if found is None:
            return None
        return decoded_row(names, found)

    def close(self) -> None:
        with self._lock:
            self.db.close()
