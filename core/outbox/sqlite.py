"""The embedded outbox: one SQLite file in WAL mode, shared by the daemon and `crossdock send`.

Every write runs in `BEGIN IMMEDIATE` (see migrations.immediate) with a busy timeout, so a
second process writing the same file waits for the lock instead of failing. A leased row keeps
its lease expiry in `next_attempt_at` as well as in `lease_expires_at`: the one index
(destination, state, next_attempt_at) then finds due queued rows and abandoned leases alike.

The file gives space back: new files use incremental auto-vacuum (an older file is converted
by one VACUUM at its first cleanup), `cleanup` forgets delivered rows in short transactions
and then returns the freed pages to the file system a few megabytes at a time, and the WAL is
checkpointed and kept under `WAL_SIZE_LIMIT` on disk (see docs/delivery.md, "Disk space").
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlite_utils import Database

from crossdock.destination import OutboxItem
from crossdock.errors import OutboxError
from crossdock.outbox.base import (
    CIRCUIT_COLUMNS,
    COUNTS_QUERIES,
    COUNTS_STATS_SQL,
    KEPT_COLUMNS,
    LOCK_WAIT,
    PAUSED_COLUMNS,
    PERSON_WAITS_SQL,
    TOKEN_COLUMNS,
    Circuit,
    DeadLetter,
    DestinationCounts,
    KeptMessage,
    NewRow,
    OutboxBase,
    Paused,
    RowQuery,
    Settlement,
    StoredToken,
    Waiting,
    circuit_from_row,
    circuit_values,
    dead_letters_from,
    decoded_row,
    dropped_by_destination,
    encoded_payloads,
    find_rows_sql,
    kept_from,
    paused_from_row,
    schema_differences,
    tally_counts,
    token_from_row,
)
from crossdock.outbox.migrations import OUTBOX_MIGRATIONS, applied, immediate, upgrade
from crossdock.outbox.payload_json import encode_payload

log = logging.getLogger("crossdock.outbox")
_T = TypeVar("_T")

# Rows per multi-row INSERT: 7 parameters each stays far below SQLite's 32766 variables.
_INSERT_CHUNK = 1000
_INSERT_SQL = (
    "INSERT OR IGNORE INTO outbox "
    "(destination, message_id, payload, person, next_attempt_at, created_at, updated_at) "
    "VALUES "
)
_ROW_SQL = "(?, ?, ?, ?, ?, ?, ?)"
_LEASED_CLEAR = "lease_owner = NULL, lease_expires_at = NULL"
_HELD = "state = 'leased' AND lease_owner = ?"

_LEASE_SQL = """
UPDATE outbox SET state = 'leased', attempts = attempts + 1, lease_owner = ?,
    lease_expires_at = ?, next_attempt_at = ?, updated_at = ?
WHERE id IN (
    SELECT id FROM outbox AS o
    WHERE destination = ? AND state IN ('queued', 'leased') AND next_attempt_at <= ?
    {in_order}
    ORDER BY next_attempt_at, id LIMIT ?
)
RETURNING id, message_id, CAST(payload AS BLOB), attempts, created_at
"""
_LEASE_ORDERED = _LEASE_SQL.format(in_order=PERSON_WAITS_SQL)
_LEASE_ANY = _LEASE_SQL.format(in_order="")

# Every waiting row of the kept batch due first (see Outbox.lease_batch). The inner query
# repeats the outbox_batch_due index's condition word for word, so SQLite uses that index.
# A queued member is taken even when it is not due yet: a file is sent whole or not at all.
_LEASE_BATCH_SQL = """
UPDATE outbox SET state = 'leased', attempts = attempts + 1, lease_owner = ?,
    lease_expires_at = ?, next_attempt_at = ?, updated_at = ?
WHERE destination = ? AND batch_key = (
    SELECT batch_key FROM outbox
    WHERE destination = ? AND batch_key IS NOT NULL AND state IN ('queued', 'leased')
        AND next_attempt_at <= ?
    ORDER BY next_attempt_at, id LIMIT 1
) AND (state = 'queued' OR (state = 'leased' AND next_attempt_at <= ?))
RETURNING id, message_id, CAST(payload AS BLOB), attempts, created_at
"""

_WAITING_SQL = """
SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created_at) FROM (
    SELECT LENGTH(CAST(payload AS BLOB)) AS size, created_at FROM outbox
    WHERE destination = ? AND state IN ('queued', 'leased') AND next_attempt_at <= ?
    ORDER BY next_attempt_at, id LIMIT ?
)
"""

#: delivered rows forgotten per cleanup transaction: each holds the write lock for some
#: milliseconds, so the collector's commits go on between them
CLEANUP_CHUNK = 1000
#: free pages returned to the file system per incremental_vacuum transaction (2 MB of 4 KB
#: pages)
VACUUM_PAGES = 512
#: after each cleanup or vacuum transaction, the write lock is left alone this many times as
#: long as the transaction held it. A writer waiting for the lock (the collector) sleeps in
#: SQLite's busy handler in steps of up to 100 ms; back-to-back transactions would keep
#: taking the lock before it wakes, and it waited as long as one big DELETE.
CLEANUP_PAUSE = 2.0
#: the WAL file's size on disk after a checkpoint (PRAGMA journal_size_limit)
WAL_SIZE_LIMIT = 64 * 1024 * 1024
_INCREMENTAL = 2  # PRAGMA auto_vacuum's number for INCREMENTAL


class SQLiteTransaction(Database):
    """The outbox's sqlite-utils `Database`, which `transaction()` yields (a `Transaction`):
    the profile store and the CLI's table views use sqlite-utils on it."""

    dialect: Literal["sqlite"] = "sqlite"


class SQLiteOutbox(OutboxBase):
    """The `Outbox` contract on one SQLite file (see base.py for the row states)."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout: float = LOCK_WAIT) -> None:
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
            # Takes effect only in a file with no tables yet: a new outbox.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            self.db = SQLiteTransaction(conn)
            #: names of the migrations this open applied (empty when already up to date)
            self.migrated = upgrade(self.db)
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.url}: cannot open the outbox ({exc})") from exc
        # One connection may be shared by the event loop and a thread pool (the collector):
        # the lock keeps a transaction's statements together.
        self._lock = threading.RLock()

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTransaction]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error. Inside it, `enqueue` and the
        profile store's writes (through `.db`) commit together; nested use joins it."""
        with self._lock, immediate(self.db):
            yield self.db

    @property
    def lock(self) -> threading.RLock:
        """The lock that keeps one transaction's statements together on the connection the
        event loop and a thread pool share (the WAL checkpointer finishes a long copy under
        it, between two transactions)."""
        return self._lock

    def health(self) -> None:
        with self._lock:
            self.db.execute("SELECT 1").fetchone()

    async def listen(self, callback: Callable[[str], Any], *,
                     ready: asyncio.Event | None = None) -> None:
        """Nothing to listen to: SQLite cannot tell another process's commits, which the
        workers' poll finds (this process's own wake them through `on_commit`)."""
        if ready is not None:
            ready.set()

    # -- writing (enqueue, enqueue_new, retry and dead: OutboxBase) -----------------------

    def _insert(self, rows: Sequence[NewRow], now: float | None) -> list[tuple[str, str]]:
        if not rows:
            return []
        now = time.time() if now is None else now
        inserted: list[tuple[str, str]] = []
        with self.transaction() as db:
            conn = db.conn
            texts = encoded_payloads(rows)
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start:start + _INSERT_CHUNK]
                params: list[Any] = []
                for row, text in zip(chunk, texts[start:start + _INSERT_CHUNK], strict=True):
                    params += (row.destination, row.message_id, text, row.person, now, now, now)
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
        now: float | None = None, *, ordered: bool = True,
    ) -> list[OutboxItem]:
        """Claim up to `limit` due rows (queued and due, or leased with an expired lease),
        oldest due first, under the token `owner`; attempts go up by one. `ordered` skips a
        row while an earlier row of its person waits. A row whose payload is not valid JSON
        goes to the dead letters instead of stopping the worker."""
        now = time.time() if now is None else now
        expires = now + lease_seconds
        with self.transaction() as db:
            found = db.conn.execute(
                _LEASE_ORDERED if ordered else _LEASE_ANY,
                [owner, expires, expires, now, destination, now, limit],
            ).fetchall()
            return self._leased(found, owner, now)

    def waiting(self, destination: str, limit: int, now: float | None = None) -> Waiting:
        now = time.time() if now is None else now
        with self._lock:
            rows, size, oldest = self.db.conn.execute(
                _WAITING_SQL, [destination, now, limit]).fetchone()
        return Waiting(int(rows), int(size), None if oldest is None else float(oldest))

    def keep_together(self, ids: Sequence[int], owner: str, key: str) -> int:
        changed = 0
        with self.transaction() as db:
            for chunk in _chunks(list(ids), _INSERT_CHUNK):
                changed += db.conn.execute(
                    f"UPDATE outbox SET batch_key = ? WHERE id IN ({','.join('?' * len(chunk))})"
                    f" AND {_HELD}", [key, *chunk, owner]).rowcount
        return changed

    def lease_batch(self, destination: str, lease_seconds: float, owner: str,
                    now: float | None = None) -> list[OutboxItem]:
        now = time.time() if now is None else now
        expires = now + lease_seconds
        with self.transaction() as db:
            found = db.conn.execute(
                _LEASE_BATCH_SQL,
                [owner, expires, expires, now, destination, destination, now, now],
            ).fetchall()
            return self._leased(found, owner, now)

    def extend(self, ids: Sequence[int], owner: str, lease_seconds: float,
               now: float | None = None) -> set[int]:
        """The heartbeat: rows still leased under `owner` keep their lease `lease_seconds`
        from `now`; returns their ids."""
        if not ids:
            return set()
        now = time.time() if now is None else now
        expires = now + lease_seconds
        held: set[int] = set()
        with self.transaction() as db:
            for chunk in _chunks(list(ids), _INSERT_CHUNK):
                held.update(id_ for (id_,) in db.conn.execute(
                    "UPDATE outbox SET lease_expires_at = ?, next_attempt_at = ? "
                    f"WHERE id IN ({','.join('?' * len(chunk))}) AND {_HELD} RETURNING id",
                    [expires, expires, *chunk, owner],
                ).fetchall())
        return held

    def _settle(self, owner: str, settlement: Settlement, now: float) -> int:
        changed = 0
        last_failure: tuple[int, str] | None = None
        with self.transaction() as db:
            conn = db.conn
            # One statement per chunk of acks instead of one per id: about twice the acks
            # per second.
            acked: dict[str, int] = {}
            for chunk in _chunks(settlement.acks, _INSERT_CHUNK):
                for (destination,) in conn.execute(
                    f"UPDATE outbox SET state = 'delivered', {_LEASED_CLEAR}, updated_at = ? "
                    f"WHERE id IN ({','.join('?' * len(chunk))}) AND {_HELD} "
                    "RETURNING destination",
                    [now, *chunk, owner],
                ).fetchall():
                    acked[destination] = acked.get(destination, 0) + 1
            if acked:
                changed += sum(acked.values())
                _tally_delivered(conn, acked)
            for id_, due, error in settlement.retries:
                if conn.execute(
                    "UPDATE outbox SET state = 'queued', next_attempt_at = ?, last_error = ?, "
                    f"{_LEASED_CLEAR}, updated_at = ? WHERE id = ? AND {_HELD}",
                    [due, error, now, id_, owner],
                ).rowcount:
                    changed += 1
                    last_failure = (id_, error)
            for id_, reason in settlement.deads:
                if conn.execute(
                    f"UPDATE outbox SET state = 'dead', last_error = ?, {_LEASED_CLEAR}, "
                    f"updated_at = ? WHERE id = ? AND {_HELD}",
                    [reason, now, id_, owner],
                ).rowcount:
                    changed += 1
                    last_failure = (id_, reason)
            if settlement.releases:
                changed += conn.executemany(
                    "UPDATE outbox SET state = 'queued', attempts = MAX(attempts - 1, 0), "
                    f"next_attempt_at = ?, {_LEASED_CLEAR}, updated_at = ? "
                    f"WHERE id = ? AND {_HELD}",
                    [(now, now, id_, owner) for id_ in settlement.releases],
                ).rowcount
            if last_failure is not None:
                # The latest error per destination, for `crossdock status`; kept in
                # outbox_stats so the status query never scans rows.
                id_, error = last_failure
                conn.execute(
                    """
                    INSERT INTO outbox_stats (destination, last_error, last_error_at)
                    SELECT destination, ?, ? FROM outbox WHERE id = ?
                    ON CONFLICT (destination) DO UPDATE SET
                        last_error = excluded.last_error, last_error_at = excluded.last_error_at
                    """,
                    [error, now, id_],
                )
        return changed

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

    def find_rows(self, query: RowQuery) -> list[DeadLetter]:
        """The rows of `query.state` the query selects, oldest change first."""
        sql, params = find_rows_sql(query, postgres=False)
        with self._lock:
            rows = self.db.conn.execute(
                sql, params,
            ).fetchall()
        return dead_letters_from(rows)

    def _requeue(self, state: str, rows: Sequence[tuple[int, dict[str, Any] | None]],
                 now: float) -> int:
        """Put rows still in `state` back in the queue, fresh (see `Outbox.requeue`)."""
        requeued: dict[str, int] = {}
        with self.transaction() as db:
            for id_, payload in rows:
                fresh = "" if payload is None else "payload = ?, "
                found = db.conn.execute(
                    f"UPDATE outbox SET {fresh}state = 'queued', attempts = 0, "
                    f"next_attempt_at = ?, {_LEASED_CLEAR}, created_at = ?, updated_at = ? "
                    "WHERE id = ? AND state = ? RETURNING destination",
                    [*([] if payload is None else [encode_payload(payload)]),
                     now, now, now, id_, state],
                ).fetchone()
                if found is not None:
                    requeued[found[0]] = requeued.get(found[0], 0) + 1
            if state == "delivered" and requeued:
                # A delivered row sent again is no longer delivered (until it is acked again).
                _tally_delivered(db.conn, {d: -n for d, n in requeued.items()})
        return sum(requeued.values())

    def _keep(self, messages: Sequence[KeptMessage], now: float) -> int:
        with self.transaction() as db:
            return db.conn.executemany(
                "INSERT OR IGNORE INTO outbox_messages "
                "(message_id, enriched, person, accepted_at) VALUES (?, ?, ?, ?)",
                [(m.message_id, encode_payload(m.enriched), m.person,
                  m.accepted_at or now) for m in messages],
            ).rowcount

    def kept(self, message_ids: Sequence[str]) -> dict[str, KeptMessage]:
        """The kept messages of these ids."""
        found: list[KeptMessage] = []
        ids = list(dict.fromkeys(message_ids))
        with self._lock:
            for part in _chunks(ids, _INSERT_CHUNK):
                found += kept_from(self.db.conn.execute(
                    f"SELECT {KEPT_COLUMNS} FROM outbox_messages "
                    f"WHERE message_id IN ({','.join('?' * len(part))})", part,
                ).fetchall())
        return {m.message_id: m for m in found}

    def kept_between(self, since: float, until: float | None, after: int = 0,
                     limit: int = 500) -> list[KeptMessage]:
        """Kept messages accepted in [since, until), `seq` above `after`, in `seq` order."""
        with self._lock:
            return kept_from(self.db.conn.execute(
                f"SELECT {KEPT_COLUMNS} FROM outbox_messages WHERE seq > ? "
                "AND accepted_at >= ? AND accepted_at < ? ORDER BY seq LIMIT ?",
                [after, since, float("inf") if until is None else until, limit],
            ).fetchall())

    def forget_kept(self, accepted_before: float) -> int:
        """Forget kept messages accepted before a time."""
        with self.transaction() as db:
            return db.conn.execute(
                "DELETE FROM outbox_messages WHERE accepted_at < ?", [accepted_before]
            ).rowcount

    def forget_people(self, persons: Sequence[str]) -> int:
        """Forget the kept messages of these person keys."""
        forgotten = 0
        with self.transaction() as db:
            for part in _chunks(list(persons), _INSERT_CHUNK):
                forgotten += db.conn.execute(
                    "DELETE FROM outbox_messages WHERE person IN "
                    f"({','.join('?' * len(part))})", part,
                ).rowcount
        return forgotten

    def checkpoint(self, key: str) -> int:
        """The `seq` a backfill named `key` got to (0: not started)."""
        with self._lock:
            found = self.db.conn.execute(
                "SELECT seq FROM outbox_checkpoints WHERE key = ?", [key]).fetchone()
        return 0 if found is None else int(found[0])

    def save_checkpoint(self, key: str, seq: int) -> None:
        """Record how far a backfill got (joins an open transaction)."""
        with self.transaction() as db:
            db.conn.execute(
                "INSERT INTO outbox_checkpoints (key, seq, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET seq = excluded.seq, "
                "updated_at = excluded.updated_at", [key, seq, time.time()],
            )

    def cleanup(self, delivered_before: float, *, chunk: int = CLEANUP_CHUNK) -> int:
        """Forget delivered rows last updated before a time, `chunk` rows per transaction
        (their count is kept); then give the freed space back (`reclaim`)."""
        forgotten = 0
        last = 0
        with self.transaction() as db:
            # A grant's token row outlives its grant when the secrets change (the key is
            # derived from them): one whose token has expired and that nobody touched since
            # the cutoff is nobody's (a live grant refreshes its row before expiry).
            db.conn.execute(
                "DELETE FROM outbox_tokens WHERE updated_at < ? "
                "AND (expires_at IS NULL OR expires_at < ?)",
                [delivered_before, delivered_before],
            )
        while True:
            started = time.perf_counter()
            with self.transaction() as db:
                conn = db.conn
                found = conn.execute(
                    "SELECT id, destination FROM outbox WHERE id > ? AND state = 'delivered' "
                    "AND updated_at < ? ORDER BY id LIMIT ?",
                    [last, delivered_before, chunk],
                ).fetchall()
                if not found:
                    break
                per_destination: dict[str, int] = {}
                for _, destination in found:
                    per_destination[destination] = per_destination.get(destination, 0) + 1
                conn.executemany(
                    "INSERT INTO outbox_stats (destination, delivered_forgotten) VALUES (?, ?) "
                    "ON CONFLICT (destination) DO UPDATE SET "
                    "delivered_forgotten = delivered_forgotten + excluded.delivered_forgotten",
                    sorted(per_destination.items()),
                )
                ids = [id_ for id_, _ in found]
                conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))})",
                             ids)
            last = found[-1][0]
            forgotten += len(found)
            _pause(started)
        if forgotten:
            self.reclaim()
        return forgotten

    def reclaim(self) -> None:
        """Give free pages back to the file system, `VACUUM_PAGES` per transaction, then
        checkpoint the WAL and truncate it. A file made before incremental auto-vacuum is
        converted by one VACUUM (it holds the write lock for as long as it runs)."""
        conn = self.db.conn
        if self.path == ":memory:":
            return
        with self._lock:
            if conn.in_transaction:  # called inside someone's transaction: not now
                return
            (mode,) = conn.execute("PRAGMA auto_vacuum").fetchone()
            if mode != _INCREMENTAL:
                log.info("%s: converting to incremental auto-vacuum (one VACUUM)", self.url)
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("VACUUM")
        left = None
        while True:
            with self._lock:
                (free,) = conn.execute("PRAGMA freelist_count").fetchone()
                if not free or free == left:  # nothing (more) it can give back
                    break
                left = free
                started = time.perf_counter()
                # executescript steps the pragma to the end; execute() would free one page.
                conn.executescript(
                    f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({VACUUM_PAGES}); COMMIT;")
            _pause(started)
        with self._lock:
            # Busy (a reader still on an older snapshot) is fine: the next cleanup tries
            # again, and journal_size_limit caps the file meanwhile.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

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

    def schema_problems(self) -> list[str]:
        with self._lock:
            done = applied(self.db)
        return schema_differences(done, [m.__name__ for m in OUTBOX_MIGRATIONS], "m")

    def counts(self) -> dict[str, DestinationCounts]:
        """Per destination: queued, leased, retrying, delivered (with forgotten ones), dead,
        the last error and the attributes the route step dropped."""
        with self._lock:
            conn = self.db.conn
            # One read transaction: the figures are of one moment (a settle between two of
            # the queries would count a row twice or not at all).
            own = not conn.in_transaction
            if own:
                conn.execute("BEGIN")
            try:
                found = [conn.execute(sql).fetchall() for sql in (
                    *(sql.format(outbox=f"outbox INDEXED BY {index}")
                      for index, sql in COUNTS_QUERIES),
                    COUNTS_STATS_SQL, f"SELECT {CIRCUIT_COLUMNS} FROM outbox_circuits",
                    f"SELECT {PAUSED_COLUMNS} FROM outbox_paused")]
            finally:
                if own:
                    conn.execute("COMMIT")
        return tally_counts(*found)

    def circuit(self, destination: str) -> Circuit:
        """A destination's stored circuit (closed, version 0, when never written)."""
        with self._lock:
            row = self.db.conn.execute(
                f"SELECT {CIRCUIT_COLUMNS} FROM outbox_circuits WHERE destination = ?",
                [destination],
            ).fetchone()
        return Circuit(destination) if row is None else circuit_from_row(row)

    def swap_circuit(self, old: Circuit, new: Circuit, now: float | None = None) -> bool:
        """Store `new` if the stored circuit is still at `old.version` (see `Outbox`)."""
        now = time.time() if now is None else now
        values = circuit_values(replace(new, destination=old.destination,
                                        version=old.version + 1))
        with self.transaction() as db:
            if old.version == 0:
                cursor = db.conn.execute(
                    f"INSERT INTO outbox_circuits ({CIRCUIT_COLUMNS}, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination) DO NOTHING",
                    [*values, now],
                )
            else:
                cursor = db.conn.execute(
                    "UPDATE outbox_circuits SET state = ?, failures = ?, opened_at = ?, "
                    "next_probe_at = ?, probes = ?, last_error = ?, version = ?, "
                    "updated_at = ? WHERE destination = ? AND version = ?",
                    [*values[1:], now, old.destination, old.version],
                )
            return cursor.rowcount == 1

    def stored_token(self, key: str) -> StoredToken:
        """A grant's shared OAuth2 token row (version 0 when there is none)."""
        with self._lock:
            row = self.db.conn.execute(
                f"SELECT {TOKEN_COLUMNS} FROM outbox_tokens WHERE key = ?", [key]
            ).fetchone()
        return token_from_row(key, row)

    def swap_token(self, old: StoredToken, new: StoredToken, now: float | None = None) -> bool:
        """Store `new` if the row is still at `old.version` (see `Outbox`)."""
        now = time.time() if now is None else now
        values = [new.sealed, new.expires_at, new.fetching_until, old.version + 1, now]
        with self.transaction() as db:
            if old.version == 0:
                cursor = db.conn.execute(
                    f"INSERT INTO outbox_tokens ({TOKEN_COLUMNS}, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                    [old.key, *values],
                )
            else:
                cursor = db.conn.execute(
                    "UPDATE outbox_tokens SET sealed = ?, expires_at = ?, "
                    "fetching_until = ?, version = ?, updated_at = ? "
                    "WHERE key = ? AND version = ?",
                    [*values, old.key, old.version],
                )
            return cursor.rowcount == 1

    def reserve_rate(self, scope: str, interval: float, burst: int = 1) -> float | None:
        """None: an SQLite outbox serves one machine, where each daemon's limiter in memory
        is the limit (crossdock.delivery.ratelimit)."""
        return None

    def pause(self, destination: str, by: str, now: float | None = None) -> bool:
        """Stop the delivery of a destination for every daemon (see `Outbox`)."""
        with self.transaction() as db:
            cursor = db.conn.execute(
                f"INSERT INTO outbox_paused ({PAUSED_COLUMNS}) VALUES (?, ?, ?) "
                "ON CONFLICT (destination) DO NOTHING",
                [destination, by, time.time() if now is None else now])
            return cursor.rowcount == 1

    def resume(self, destination: str) -> bool:
        """Let a paused destination's rows be leased again (see `Outbox`)."""
        with self.transaction() as db:
            cursor = db.conn.execute("DELETE FROM outbox_paused WHERE destination = ?",
                                    [destination])
            return cursor.rowcount == 1

    def paused(self) -> dict[str, Paused]:
        """The paused destinations."""
        with self._lock:
            rows = self.db.conn.execute(f"SELECT {PAUSED_COLUMNS} FROM outbox_paused").fetchall()
        return {pause.destination: pause for pause in map(paused_from_row, rows)}

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




def _tally_delivered(conn: sqlite3.Connection, delivered: dict[str, int]) -> None:
    """Add to each destination's delivered tally (outbox_stats.delivered), which `counts()`
    reads instead of counting delivered rows."""
    conn.executemany(
        "INSERT INTO outbox_stats (destination, delivered) VALUES (?, ?) "
        "ON CONFLICT (destination) DO UPDATE SET delivered = delivered + excluded.delivered",
        sorted(delivered.items()))


def _pause(started: float) -> None:
    """Leave the write lock to others for CLEANUP_PAUSE times what the transaction begun at
    `started` (perf_counter) held it (cleanup runs in a thread of its own: it may sleep)."""
    time.sleep((time.perf_counter() - started) * CLEANUP_PAUSE)


def _chunks(ids: list[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]
