"""The shared outbox: one PostgreSQL database used by many daemons on many machines.

Leasing is one statement, `UPDATE outbox ... WHERE id IN (SELECT id ... FOR UPDATE SKIP
LOCKED) RETURNING ...`: two daemons leasing the same destination at once each get different
rows and neither waits for the other. As in SQLite, a leased row keeps its lease expiry in
`next_attempt_at`, so the rows of a daemon that died come due again and are taken over.

Every enqueue that adds rows sends `NOTIFY crossdock_outbox, '<destination>'` inside its
transaction; PostgreSQL delivers it on commit, so `listen(callback)` wakes the workers of every
daemon the moment rows are committed, instead of at their next poll.

Connections come from a small pool, one per thread at a time; `transaction()` pins one to the
calling thread so `enqueue` and the collector's dedup writes inside it commit together (the
same contract as `SQLiteOutbox.transaction`). Within it, `.execute(sql, params)` takes SQLite's
`?` placeholders too, so `crossdock.dedup.Dedup` runs unchanged on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import Any, Literal

import psycopg
from psycopg import pq, sql

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
from crossdock.outbox.dsn import redact
from crossdock.outbox.payload_json import encode_payload
from crossdock.outbox.pg_schema import PG_MIGRATIONS, applied, upgrade

log = logging.getLogger("crossdock.outbox")

#: the LISTEN/NOTIFY channel's prefix (the schema follows it); the payload is the
#: destination name
CHANNEL = "crossdock_outbox"

DEFAULT_POOL_SIZE = 8
_LEASED_CLEAR = "lease_owner = NULL, lease_expires_at = NULL"
# Adds to each destination's delivered tally (outbox_stats.delivered) the rows of `rows`
# (a query's name with a destination column), or takes them away (`sign` "-"). In
# destination order, so two transactions tallying the same destinations cannot deadlock.
_TALLY_DELIVERED = (
    "INSERT INTO outbox_stats (destination, delivered) "
    "SELECT destination, {sign}COUNT(*) FROM {rows} GROUP BY destination ORDER BY destination "
    "ON CONFLICT (destination) DO UPDATE SET "
    "delivered = outbox_stats.delivered + excluded.delivered"
)
#: delivered rows forgotten per cleanup transaction (short transactions, as in SQLite)
CLEANUP_CHUNK = 5000

# Under READ COMMITTED a row another daemon leased and committed since this statement's
# snapshot is re-checked after locking: its next_attempt_at is now in the future, so it drops
# out instead of being leased twice.
_LEASE_SQL = """
UPDATE outbox SET state = 'leased', attempts = attempts + 1, lease_owner = %s,
    lease_expires_at = %s, next_attempt_at = %s, updated_at = %s
WHERE id IN (
    SELECT id FROM outbox AS o
    WHERE destination = %s AND state IN ('queued', 'leased') AND next_attempt_at <= %s
    {in_order}
    ORDER BY next_attempt_at, id LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, message_id, payload, attempts, created_at
"""
# The person check (PERSON_WAITS_SQL) reads this statement's snapshot: a lease another
# daemon committed meanwhile keeps its row waiting, and a row stops waiting only when it is
# settled, so no later row of the person slips past a row in flight.
_LEASE_ORDERED = _LEASE_SQL.format(in_order=PERSON_WAITS_SQL)
_LEASE_ANY = _LEASE_SQL.format(in_order="")

# Every waiting row of the kept batch due first (see Outbox.lease_batch); a queued member is
# taken even when not due yet, since a file is sent whole or not at all. The batch's first
# row is locked with SKIP LOCKED, so two daemons never both start the same batch; the
# members are then locked and re-checked after the lock (READ COMMITTED), so a row another
# daemon leased meanwhile drops out rather than being leased twice.
_LEASE_BATCH_SQL = """
WITH first AS (
    SELECT batch_key FROM outbox
    WHERE destination = %s AND batch_key IS NOT NULL AND state IN ('queued', 'leased')
        AND next_attempt_at <= %s
    ORDER BY next_attempt_at, id LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox SET state = 'leased', attempts = attempts + 1, lease_owner = %s,
    lease_expires_at = %s, next_attempt_at = %s, updated_at = %s
WHERE destination = %s AND batch_key = (SELECT batch_key FROM first)
    AND (state = 'queued' OR (state = 'leased' AND next_attempt_at <= %s))
RETURNING id, message_id, payload, attempts, created_at
"""

_WAITING_SQL = """
SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created_at) FROM (
    SELECT OCTET_LENGTH(payload) AS size, created_at FROM outbox
    WHERE destination = %s AND state IN ('queued', 'leased') AND next_attempt_at <= %s
    ORDER BY next_attempt_at, id LIMIT %s
) AS due
"""


def channel_for(schema: str) -> str:
    """The wake-up channel of the outbox in `schema`. Channels are database-wide, so each
    schema gets its own: fleets sharing one database in different schemas never wake (or
    hand destination names to) each other. A name over PostgreSQL's 63 bytes is hashed."""
    name = f"{CHANNEL}.{schema}"
    if len(name.encode()) <= 63:
        return name
    return f"{CHANNEL}.{hashlib.sha256(schema.encode()).hexdigest()[:32]}"


_QMARK = re.compile(r"\?")


class PgTransaction:
    """The handle `PostgresOutbox.transaction()` yields: the connection of the transaction,
    and an `execute` that accepts SQLite-style `?` placeholders (for code shared with the
    SQLite outbox, such as crossdock.dedup)."""

    dialect: Literal["postgresql"] = "postgresql"

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        if params is None:
            return self.conn.execute(sql.encode())
        return self.conn.execute(_psycopg_sql(sql), params)


@functools.lru_cache(maxsize=512)
def _psycopg_sql(sql: str) -> bytes:
    """SQLite-style SQL in psycopg's placeholders. Cached: the profile store runs the same
    few statements every accept, and converting each with a regular expression was a tenth
    of a PostgreSQL collector's accept thread."""
    return _QMARK.sub("%s", sql.replace("%", "%%")).encode()


class _Pool:
    """A bounded set of autocommit connections (psycopg_pool is not a dependency)."""

    def __init__(self, connect: Callable[[], psycopg.Connection], size: int,
                 timeout: float) -> None:
        self._connect = connect
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout = timeout
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        if self._closed:
            raise OutboxError("the outbox is closed")
        if not self._slots.acquire(timeout=self._timeout):
            raise OutboxError(f"no free outbox connection after {self._timeout:g}s "
                              "(raise pool_size, or look for a stuck transaction)")
        conn: psycopg.Connection | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                if (self._closed or conn.closed or conn.broken
                        or conn.info.transaction_status != pq.TransactionStatus.IDLE):
                    conn.close()
                else:
                    self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


#: take the next slot of a shared rate bucket: how far it is from the database's now
_RESERVE_RATE = """
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO rate_buckets AS b (scope, tat, updated_at)
SELECT %(scope)s, clock.now + %(interval)s, clock.now FROM clock
ON CONFLICT (scope) DO UPDATE
    SET tat = GREATEST(b.tat, (SELECT now FROM clock)) + %(interval)s,
        updated_at = (SELECT now FROM clock)
RETURNING b.tat - %(interval)s - (SELECT now FROM clock)
"""


class PostgresOutbox(OutboxBase):
    """The `Outbox` contract on PostgreSQL (see base.py for the row states)."""

    dialect: Literal["postgresql"] = "postgresql"

    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE,
                 pool_timeout: float = LOCK_WAIT, connect_timeout: int = 10,
                 migrate: bool = True) -> None:
        self._conninfo = url
        self.url = redact(url)
        self._connect_timeout = connect_timeout
        self._pool = _Pool(self._new_connection, pool_size, pool_timeout)
        self._local = threading.local()
        #: names of the migrations this open applied (empty when already up to date)
        self.migrated: list[str] = []
        self._channel_name: str | None = None
        if migrate:
            self.migrated = self.upgrade()

    def _new_connection(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._conninfo, autocommit=True,
                                   connect_timeout=self._connect_timeout)
        except psycopg.Error as exc:
            raise OutboxError(f"{self.url}: cannot connect to PostgreSQL ({exc})") from exc

    def _channel(self, conn: psycopg.Connection[Any] | None = None) -> str:
        """This outbox's LISTEN/NOTIFY channel (see channel_for), asked of `conn` (a
        connection in hand, so a transaction never waits for a second one) the first time."""
        if self._channel_name is None:
            if conn is None:
                with self._pool.connection() as own:
                    return self._channel(own)
            found = conn.execute("SELECT current_schema()").fetchone()
            self._channel_name = channel_for(str(found[0]) if found and found[0] else "public")
        return self._channel_name

    @property
    def channel(self) -> str:
        return self._channel()

    def upgrade(self) -> list[str]:
        """Apply the migrations not yet applied (`crossdock db upgrade`); returns their names."""
        with self._pool.connection() as conn:
            return upgrade(conn)

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        """BEGIN ... COMMIT, or ROLLBACK on error, on a connection pinned to this thread.
        Inside it, `enqueue` and writes through the yielded handle commit together; nested
        use joins it."""
        current: PgTransaction | None = getattr(self._local, "tx", None)
        if current is not None:
            yield current
            return
        with self._pool.connection() as conn:
            tx = PgTransaction(conn)
            self._local.tx = tx
            try:
                with conn.transaction():
                    yield tx
            finally:
                self._local.tx = None

    @property
    def lock(self) -> AbstractContextManager[None]:
        """Nothing to hold: every thread has a pooled connection of its own."""
        return nullcontext()

    def health(self) -> None:
        with self._tx() as conn:
            conn.execute("SELECT 1").fetchone()

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection]:
        try:
            with self.transaction() as tx:
                yield tx.conn
        except psycopg.Error as exc:
            raise OutboxError(f"{self.url}: {exc}") from exc

    # -- writing (enqueue, enqueue_new, retry and dead: OutboxBase) -----------------------

    def _insert(self, rows: Sequence[NewRow], now: float | None) -> list[tuple[str, str]]:
        if not rows:
            return []
        now = time.time() if now is None else now
        with self._tx() as conn:
            # Ids are drawn in routing order, because leases follow ids and a person's
            # messages must reach a destination in the order they were routed (an identify
            # before the audience entry it causes). The rows are then inserted in one lock
            # order for every writer, so two overlapping enqueues cannot deadlock on the
            # unique index.
            ids = sorted(i for (i,) in conn.execute(
                "SELECT nextval(pg_get_serial_sequence('outbox', 'id')) "
                "FROM generate_series(1, %s)", [len(rows)]).fetchall())
            # Encoded in routing order, where rows sharing a payload are next to each other.
            ordered = sorted(zip(ids, rows, encoded_payloads(rows), strict=True),
                             key=lambda row: (row[1].destination, row[1].message_id))
            inserted: list[tuple[str, str]] = [
                (d, m) for d, m in conn.execute(
                    """
                    INSERT INTO outbox
                        (id, destination, message_id, payload, person, next_attempt_at,
                         created_at, updated_at)
                    SELECT i, d, m, p, k, %(now)s, %(now)s, %(now)s
                    FROM unnest(%(i)s::bigint[], %(d)b::text[], %(m)b::text[], %(p)b::text[],
                                %(k)b::text[])
                        AS r(i, d, m, p, k)
                    ON CONFLICT (destination, message_id) DO NOTHING
                    RETURNING destination, message_id
                    """,
                    {"now": now, "i": [i for i, _, _ in ordered],
                     "d": [r.destination for _, r, _ in ordered],
                     "m": [r.message_id for _, r, _ in ordered],
                     "p": [text for _, _, text in ordered],
                     "k": [r.person for _, r, _ in ordered]},
                ).fetchall()
            ]
            destinations = sorted({d for d, _ in inserted})
            dropped = dropped_by_destination(rows, inserted)
            if dropped:
                names = sorted(dropped)
                conn.execute(
                    "INSERT INTO outbox_stats (destination, dropped_attributes) "
                    "SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                    "ON CONFLICT (destination) DO UPDATE SET "
                    "dropped_attributes = outbox_stats.dropped_attributes "
                    "+ excluded.dropped_attributes",
                    [names, [dropped[n] for n in names]],
                )
            if destinations:
                # Delivered by PostgreSQL when this transaction commits, never before.
                conn.execute("SELECT pg_notify(%s, d) FROM unnest(%s::text[]) AS d",
                             [self._channel(conn), destinations])
        return inserted

    def lease(
        self, destination: str, limit: int, lease_seconds: float, owner: str,
        now: float | None = None, *, ordered: bool = True,
    ) -> list[OutboxItem]:
        """Claim up to `limit` due rows (queued and due, or leased with an expired lease),
        oldest due first, under the token `owner`; attempts go up by one. Rows locked by
        another daemon's lease in progress are skipped, not waited for; `ordered` skips a
        row while an earlier row of its person waits. A payload that is not a JSON object
        goes to the dead letters instead of stopping the worker."""
        now = time.time() if now is None else now
        expires = now + lease_seconds
        with self._tx() as conn:
            found = conn.execute(
                _LEASE_ORDERED if ordered else _LEASE_ANY,
                [owner, expires, expires, now, destination, now, limit],
            ).fetchall()
            return self._leased(found, owner, now)

    def waiting(self, destination: str, limit: int, now: float | None = None) -> Waiting:
        now = time.time() if now is None else now
        with self._tx() as conn:
            row = conn.execute(_WAITING_SQL, [destination, now, limit]).fetchone()
        assert row is not None  # an aggregate always answers one row
        rows, size, oldest = row
        return Waiting(int(rows), int(size), None if oldest is None else float(oldest))

    def keep_together(self, ids: Sequence[int], owner: str, key: str) -> int:
        if not ids:
            return 0
        with self._tx() as conn:
            return conn.execute(
                "UPDATE outbox SET batch_key = %s "
                "WHERE id = ANY(%s) AND state = 'leased' AND lease_owner = %s",
                [key, sorted(ids), owner]).rowcount

    def lease_batch(self, destination: str, lease_seconds: float, owner: str,
                    now: float | None = None) -> list[OutboxItem]:
        now = time.time() if now is None else now
        expires = now + lease_seconds
        with self._tx() as conn:
            found = conn.execute(
                _LEASE_BATCH_SQL,
                [destination, now, owner, expires, expires, now, destination, now],
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
        with self._tx() as conn:
            return {id_ for (id_,) in conn.execute(
                "UPDATE outbox SET lease_expires_at = %s, next_attempt_at = %s "
                "WHERE id = ANY(%s) AND state = 'leased' AND lease_owner = %s RETURNING id",
                [expires, expires, sorted(ids), owner],
            ).fetchall()}

    def _settle(self, owner: str, settlement: Settlement, now: float) -> int:
        changed = 0
        failed: dict[int, str] = {}
        with self._tx() as conn:
            if settlement.acks:
                # The delivered tally (outbox_stats.delivered, which `counts()` reads
                # instead of counting delivered rows) goes up in the same statement.
                found = conn.execute(
                    f"""
                    WITH acked AS (
                        UPDATE outbox SET state = 'delivered', {_LEASED_CLEAR}, updated_at = %s
                        WHERE id = ANY(%s) AND state = 'leased' AND lease_owner = %s
                        RETURNING destination
                    ), tallied AS ({_TALLY_DELIVERED.format(rows="acked", sign="")})
                    SELECT COUNT(*) FROM acked
                    """,
                    [now, sorted(settlement.acks), owner],
                ).fetchone()
                changed += 0 if found is None else int(found[0])
            if settlement.retries:
                retries = settlement.retries
                updated = {id_ for (id_,) in conn.execute(
                    f"""
                    UPDATE outbox AS o SET state = 'queued', next_attempt_at = r.at,
                        last_error = r.error, {_LEASED_CLEAR}, updated_at = %s
                    FROM unnest(%s::bigint[], %s::float8[], %s::text[]) AS r(id, at, error)
                    WHERE o.id = r.id AND o.state = 'leased' AND o.lease_owner = %s
                    RETURNING o.id
                    """,
                    [now, [r[0] for r in retries], [r[1] for r in retries],
                     [r[2] for r in retries], owner],
                ).fetchall()}
                failed.update((id_, error) for id_, _, error in retries if id_ in updated)
            if settlement.deads:
                deads = settlement.deads
                updated = {id_ for (id_,) in conn.execute(
                    f"""
                    UPDATE outbox AS o SET state = 'dead', last_error = r.reason,
                        {_LEASED_CLEAR}, updated_at = %s
                    FROM unnest(%s::bigint[], %s::text[]) AS r(id, reason)
                    WHERE o.id = r.id AND o.state = 'leased' AND o.lease_owner = %s
                    RETURNING o.id
                    """,
                    [now, [d[0] for d in deads], [d[1] for d in deads], owner],
                ).fetchall()}
                failed.update((id_, reason) for id_, reason in deads if id_ in updated)
            if settlement.releases:
                changed += conn.execute(
                    "UPDATE outbox SET state = 'queued', attempts = GREATEST(attempts - 1, 0), "
                    f"next_attempt_at = %s, {_LEASED_CLEAR}, updated_at = %s "
                    "WHERE id = ANY(%s) AND state = 'leased' AND lease_owner = %s",
                    [now, now, sorted(settlement.releases), owner],
                ).rowcount
            changed += len(failed)
            last = next((id_ for id_ in reversed([*(r[0] for r in settlement.retries),
                                                  *(d[0] for d in settlement.deads)])
                         if id_ in failed), None)
            if last is not None:
                # The latest error per destination, for `crossdock status`.
                conn.execute(
                    """
                    INSERT INTO outbox_stats (destination, last_error, last_error_at)
                    SELECT destination, %s, %s FROM outbox WHERE id = %s
                    ON CONFLICT (destination) DO UPDATE SET
                        last_error = excluded.last_error, last_error_at = excluded.last_error_at
                    """,
                    [failed[last], now, last],
                )
        return changed

    def replay(self, destination: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Put dead letters back in the queue with fresh attempts and a fresh age (see
        `Outbox.replay`); returns how many."""
        now = time.time()
        where, params = self._dead_filter(destination, ids)
        with self._tx() as conn:
            per_destination = conn.execute(
                "WITH replayed AS (UPDATE outbox SET state = 'queued', attempts = 0, "
                f"next_attempt_at = %s, {_LEASED_CLEAR}, created_at = %s, updated_at = %s "
                f"WHERE {where} RETURNING destination) "
                "SELECT destination, COUNT(*) FROM replayed GROUP BY destination",
                [now, now, now, *params],
            ).fetchall()
            if per_destination:
                conn.execute("SELECT pg_notify(%s, d) FROM unnest(%s::text[]) AS d",
                             [self._channel(conn), sorted(d for d, _ in per_destination)])
            return sum(int(n) for _, n in per_destination)

    @staticmethod
    def _dead_filter(
        destination: str | None, ids: Sequence[int] | None
    ) -> tuple[str, list[Any]]:
        where = ["state = 'dead'"]
        params: list[Any] = []
        if destination is not None:
            where.append("destination = %s")
            params.append(destination)
        if ids is not None:
            where.append("id = ANY(%s)")
            params.append(list(ids))
        return " AND ".join(where), params

    def find_rows(self, query: RowQuery) -> list[DeadLetter]:
        """The rows of `query.state` the query selects, oldest change first."""
        sql, params = find_rows_sql(query, postgres=True)
        with self._tx() as conn:
            rows = conn.execute(
                sql, params,
            ).fetchall()
        return dead_letters_from(rows)

    def _requeue(self, state: str, rows: Sequence[tuple[int, dict[str, Any] | None]],
                 now: float) -> int:
        """Put rows still in `state` back in the queue, fresh (see `Outbox.requeue`), and
        wake every daemon's workers of their destinations."""
        woken: set[str] = set()
        changed = 0
        with self._tx() as conn:
            requeued: list[str] = []
            # In id order, the order cleanup and leases lock rows in, so they cannot deadlock
            # (the rows are due together; leases take them by id whatever order they came).
            for id_, payload in sorted(rows, key=lambda row: row[0]):
                fresh = "" if payload is None else "payload = %s, "
                found = conn.execute(
                    f"UPDATE outbox SET {fresh}state = 'queued', attempts = 0, "
                    f"next_attempt_at = %s, {_LEASED_CLEAR}, created_at = %s, updated_at = %s "
                    "WHERE id = %s AND state = %s RETURNING destination",
                    [*([] if payload is None else [encode_payload(payload)]),
                     now, now, now, id_, state],
                ).fetchone()
                if found is not None:
                    changed += 1
                    woken.add(str(found[0]))
                    requeued.append(str(found[0]))
            if state == "delivered" and requeued:
                # A delivered row sent again is no longer delivered (until it is acked again).
                conn.execute(_TALLY_DELIVERED.format(
                    rows="unnest(%s::text[]) AS requeued(destination)", sign="-"), [requeued])
            if woken:
                conn.execute("SELECT pg_notify(%s, d) FROM unnest(%s::text[]) AS d",
                             [self._channel(conn), sorted(woken)])
        return changed

    def _keep(self, messages: Sequence[KeptMessage], now: float) -> int:
        with self._tx() as conn:
            found = conn.execute(
                "INSERT INTO outbox_messages "
                "(message_id, enriched, person, accepted_at) "
                # binary text arrays, as the outbox insert's: the text format escapes every
                # quote of every JSON document with a regex callback
                "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %s::float8[]) "
                "ON CONFLICT (message_id) DO NOTHING RETURNING seq",
                [[m.message_id for m in messages],
                 [encode_payload(m.enriched) for m in messages],
                 [m.person for m in messages],
                 [m.accepted_at or now for m in messages]],
            ).fetchall()
        return len(found)

    def kept(self, message_ids: Sequence[str]) -> dict[str, KeptMessage]:
        """The kept messages of these ids."""
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {KEPT_COLUMNS} FROM outbox_messages WHERE message_id = ANY(%s)",
                [list(message_ids)],
            ).fetchall()
        return {m.message_id: m for m in kept_from(rows)}

    def kept_between(self, since: float, until: float | None, after: int = 0,
                     limit: int = 500) -> list[KeptMessage]:
        """Kept messages accepted in [since, until), `seq` above `after`, in `seq` order."""
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {KEPT_COLUMNS} FROM outbox_messages WHERE seq > %s "
                "AND accepted_at >= %s AND (%s::float8 IS NULL OR accepted_at < %s) "
                "ORDER BY seq LIMIT %s",
                [after, since, until, until, limit],
            ).fetchall()
        return kept_from(rows)

    def forget_kept(self, accepted_before: float) -> int:
        """Forget kept messages accepted before a time."""
        with self._tx() as conn:
            return conn.execute(
                "DELETE FROM outbox_messages WHERE accepted_at < %s", [accepted_before]
            ).rowcount

    def forget_people(self, persons: Sequence[str]) -> int:
        """Forget the kept messages of these person keys."""
        with self._tx() as conn:
            return conn.execute(
                "DELETE FROM outbox_messages WHERE person = ANY(%s)", [list(persons)],
            ).rowcount

    def checkpoint(self, key: str) -> int:
        """The `seq` a backfill named `key` got to (0: not started)."""
        with self._tx() as conn:
            found = conn.execute(
                "SELECT seq FROM outbox_checkpoints WHERE key = %s", [key]).fetchone()
        return 0 if found is None else int(found[0])

    def save_checkpoint(self, key: str, seq: int) -> None:
        """Record how far a backfill got (joins an open transaction)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO outbox_checkpoints (key, seq, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET seq = excluded.seq, "
                "updated_at = excluded.updated_at", [key, seq, time.time()],
            )

    def cleanup(self, delivered_before: float, *, chunk: int = CLEANUP_CHUNK) -> int:
        """Forget delivered rows last updated before a time, `chunk` rows per transaction
        (their count is kept). Autovacuum reuses the space."""
        forgotten = 0
        last = 0
        with self._tx() as conn:
            # Buckets idle since then hold no slot anyone waits for (rate keys may come and
            # go, e.g. one per webhook): a fresh row is the same as an idle one.
            conn.execute("DELETE FROM rate_buckets WHERE tat < %s", [delivered_before])
            # A token row of a grant whose secrets changed (see the SQLite outbox's cleanup).
            conn.execute(
                "DELETE FROM outbox_tokens WHERE updated_at < %s "
                "AND (expires_at IS NULL OR expires_at < %s)",
                [delivered_before, delivered_before],
            )
        while True:
            with self._tx() as conn:
                found = conn.execute(
                    """
                    WITH gone AS (
                        DELETE FROM outbox WHERE id IN (
                            SELECT id FROM outbox
                            WHERE id > %s AND state = 'delivered' AND updated_at < %s
                            ORDER BY id LIMIT %s)
                        -- Asked again of the row deleted: a row a replay put back in the
                        -- queue while this waited for its lock is re-read here (READ
                        -- COMMITTED re-checks the DELETE's own conditions, not the
                        -- subquery's), and kept.
                        AND state = 'delivered' AND updated_at < %s
                        RETURNING id, destination
                    )
                    SELECT destination, COUNT(*), MAX(id) FROM gone GROUP BY destination
                    ORDER BY destination
                    """,
                    [last, delivered_before, chunk, delivered_before],
                ).fetchall()
                if not found:
                    return forgotten
                conn.execute(
                    "INSERT INTO outbox_stats (destination, delivered_forgotten) "
                    "SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                    "ON CONFLICT (destination) DO UPDATE SET delivered_forgotten = "
                    "outbox_stats.delivered_forgotten + excluded.delivered_forgotten",
                    [[d for d, _, _ in found], [n for _, n, _ in found]],
                )
            last = max(int(top) for _, _, top in found)
            forgotten += sum(int(n) for _, n, _ in found)

    # -- reading ------------------------------------------------------------------------

    def next_due(self, destination: str) -> float | None:
        """When the earliest queued row of a destination is due, or a lease expires (None:
        nothing queued or leased)."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT MIN(next_attempt_at) FROM outbox "
                "WHERE destination = %s AND state IN ('queued', 'leased')",
                [destination],
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def schema_problems(self) -> list[str]:
        with self._tx() as conn:
            done = applied(conn)
        return schema_differences(done, [m.__name__ for m in PG_MIGRATIONS], "pg_")

    def counts(self) -> dict[str, DestinationCounts]:
        """Per destination: queued, leased, retrying, delivered (with forgotten ones), dead,
        the last error and the attributes the route step dropped. Of one moment: the
        queries read one snapshot (REPEATABLE READ), or an ack committed between the
        waiting rows' count and the delivered tally showed its row both leased and delivered."""
        fresh = getattr(self._local, "tx", None) is None
        with self._tx() as conn:
            if fresh:  # else it joins a caller's transaction, whose reads it shares
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found = [conn.execute(sql).fetchall() for sql in (
                *(sql.format(outbox="outbox") for _, sql in COUNTS_QUERIES),
                COUNTS_STATS_SQL, f"SELECT {CIRCUIT_COLUMNS} FROM outbox_circuits",
                f"SELECT {PAUSED_COLUMNS} FROM outbox_paused")]
        return tally_counts(*found)

    def circuit(self, destination: str) -> Circuit:
        """A destination's stored circuit (closed, version 0, when never written)."""
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT {CIRCUIT_COLUMNS} FROM outbox_circuits WHERE destination = %s",
                [destination],
            ).fetchone()
        return Circuit(destination) if row is None else circuit_from_row(row)

    def swap_circuit(self, old: Circuit, new: Circuit, now: float | None = None) -> bool:
        """Store `new` if the stored circuit is still at `old.version` (see `Outbox`): the
        whole fleet shares one circuit per destination."""
        now = time.time() if now is None else now
        values = circuit_values(replace(new, destination=old.destination,
                                        version=old.version + 1))
        with self._tx() as conn:
            if old.version == 0:
                cursor = conn.execute(
                    f"INSERT INTO outbox_circuits ({CIRCUIT_COLUMNS}, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (destination) DO NOTHING",
                    [*values, now],
                )
            else:
                cursor = conn.execute(
                    "UPDATE outbox_circuits SET state = %s, failures = %s, opened_at = %s, "
                    "next_probe_at = %s, probes = %s, last_error = %s, version = %s, "
                    "updated_at = %s WHERE destination = %s AND version = %s",
                    [*values[1:], now, old.destination, old.version],
                )
            return cursor.rowcount == 1

    def stored_token(self, key: str) -> StoredToken:
        """A grant's shared OAuth2 token row (version 0 when there is none)."""
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT {TOKEN_COLUMNS} FROM outbox_tokens WHERE key = %s", [key]
            ).fetchone()
        return token_from_row(key, row)

    def swap_token(self, old: StoredToken, new: StoredToken, now: float | None = None) -> bool:
        """Store `new` if the row is still at `old.version` (see `Outbox`)."""
        now = time.time() if now is None else now
        values = [new.sealed, new.expires_at, new.fetching_until, old.version + 1, now]
        with self._tx() as conn:
            if old.version == 0:
                cursor = conn.execute(
                    f"INSERT INTO outbox_tokens ({TOKEN_COLUMNS}, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                    [old.key, *values],
                )
            else:
                cursor = conn.execute(
                    "UPDATE outbox_tokens SET sealed = %s, expires_at = %s, "
                    "fetching_until = %s, version = %s, updated_at = %s "
                    "WHERE key = %s AND version = %s",
                    [*values, old.key, old.version],
                )
            return cursor.rowcount == 1

    def reserve_rate(self, scope: str, interval: float, burst: int = 1) -> float:
        """The next slot of `scope` in the fleet's shared bucket (see `Outbox`): one
        statement, so two daemons reserving at once queue on the row's lock and get
        consecutive slots. The bucket is kept as GCRA's theoretical arrival time (`tat`, as
        crossdock.delivery.ratelimit does in memory), on the database's clock so the
        daemons' own clocks may disagree."""
        with self._tx() as conn:
            row = conn.execute(_RESERVE_RATE, {"scope": scope, "interval": interval}).fetchone()
        waited = float(row[0]) if row is not None else 0.0
        return max(0.0, waited - (burst - 1) * interval)

    def pause(self, destination: str, by: str, now: float | None = None) -> bool:
        """Stop the delivery of a destination for every daemon (see `Outbox`)."""
        with self._tx() as conn:
            cursor = conn.execute(
                f"INSERT INTO outbox_paused ({PAUSED_COLUMNS}) VALUES (%s, %s, %s) "
                "ON CONFLICT (destination) DO NOTHING",
                [destination, by, time.time() if now is None else now])
            return cursor.rowcount == 1

    def resume(self, destination: str) -> bool:
        """Let a paused destination's rows be leased again (see `Outbox`)."""
        with self._tx() as conn:
            cursor = conn.execute("DELETE FROM outbox_paused WHERE destination = %s",
                                    [destination])
            return cursor.rowcount == 1

    def paused(self) -> dict[str, Paused]:
        """The paused destinations."""
        with self._tx() as conn:
            rows = conn.execute(f"SELECT {PAUSED_COLUMNS} FROM outbox_paused").fetchall()
        return {pause.destination: pause for pause in map(paused_from_row, rows)}

    def dead_letters(self, destination: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters first, with their reasons and payloads."""
        where, params = self._dead_filter(destination, None)
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, destination, message_id, attempts, last_error, updated_at, payload "
                f"FROM outbox WHERE {where} ORDER BY updated_at DESC, id DESC LIMIT %s",
                [*params, limit],
            ).fetchall()
        return dead_letters_from(rows)

    def row(self, destination: str, message_id: str) -> dict[str, Any] | None:
        """One row as a dict (payload decoded), for inspection and tests."""
        with self._tx() as conn:
            cursor = conn.execute(
                "SELECT * FROM outbox WHERE destination = %s AND message_id = %s",
                [destination, message_id],
            )
            found = cursor.fetchone()
            names = [d.name for d in cursor.description or []]
        if found is None:
            return None
        return decoded_row(names, found)

    # -- waking other daemons ------------------------------------------------------------

    async def listen(
        self,
        callback: Callable[[str], Any],
        *,
        ready: asyncio.Event | None = None,
        reconnect_delay: float = 1.0,
    ) -> None:
        """Call `callback(destination)` for every commit that adds rows, in any process
        using this database, until cancelled. Runs on its own connection; when that drops
        it reconnects (rows committed meanwhile are found by the workers' poll). `ready`
        is set once LISTEN is in place."""
        while True:
            try:
                listen = await asyncio.to_thread(lambda: self.listen_statement)
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=self._connect_timeout)
                async with conn:
                    await conn.execute(listen)
                    if ready is not None:
                        ready.set()
                    async for note in conn.notifies():
                        try:
                            callback(note.payload)
                        except Exception:
                            log.exception("outbox listener callback failed")
            except (psycopg.Error, OutboxError) as exc:
                log.warning("%s: LISTEN connection lost (%s); reconnecting in %gs",
                            self.url, exc, reconnect_delay)
                await asyncio.sleep(reconnect_delay)

    @property
    def listen_statement(self) -> sql.Composed:
        return sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))

    def close(self) -> None:
        self._pool.close()
