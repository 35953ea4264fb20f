"""The outbox contract every implementation (SQLite, PostgreSQL) keeps.

Row states:   queued --lease--> leased --ack--> delivered
                 ^                 |--retry--> queued (attempts kept, next_attempt_at later)
                 |                 |--dead---> dead (reason kept)
                 |                 |--release--> queued (the attempt not counted)
                 +--replay-- dead  +--lease expired--> leased again by another worker

"retrying" in status means: queued with attempts > 0.

Every lease is held under an owner token. Each way out of `leased` (ack, retry, dead, release)
and the heartbeat that extends a lease (`extend`) changes a row only while it is still leased
under the token that settles it: a worker whose lease expired, and whose row another worker
took over (and perhaps delivered), changes nothing. Two leases must never share a token; the
engine makes one per lease (its owner name, "#", a sequence number).

Rows may carry a person key (`NewRow.person`). An ordered lease takes a row only when the
previous row (next lower id) of the same destination and person is neither queued nor
leased: with every lease of the destination ordered, no earlier row of the person waits, so
one person's messages reach a destination in the order they were accepted, one at a time,
and a dead letter lets the next one go. (A replayed dead letter waits again without holding
back the rows after it.)

Below the contract, `OutboxBase` and the functions after it are what the two engines do the
same way: payloads are JSON text in both (see payload_json), so leasing, dead letters,
counts and the dropped-attribute tally read rows alike; each engine keeps only its SQL.
"""

from __future__ import annotations

import asyncio
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeGuard, cast

from sqlite_utils import Database

from crossdock.destination import OutboxItem
from crossdock.outbox.payload_json import PayloadText, decode_payloads, encode_payload

#: the longest an outbox call waits for the database by default: SQLite's busy timeout (a
#: write lock held by another connection), PostgreSQL's wait for a pooled connection
LOCK_WAIT = 30.0


@dataclass(slots=True)
class NewRow:
    """A routed message for one destination, to be written to the outbox. `person` keys the
    person the message is about (None: no person, never held back by another row).

    Not frozen, though nothing changes one: a frozen dataclass's __init__ costs about six
    times a plain one's, and the pipeline makes one for every destination of every message.
    (Frozen, it was no more hashable: its payload is a dict.)"""

    destination: str
    message_id: str
    payload: dict[str, Any]
    person: str | None = None


@dataclass(slots=True)
class Settlement:
    """The fates of rows leased under one owner token, written by `Outbox.settle` in one
    transaction: delivered, back to the queue due at a time with the error, dead with the
    reason, or given back unattempted."""

    acks: list[int] = field(default_factory=list)
    #: (id, next_attempt_at, error)
    retries: list[tuple[int, float, str]] = field(default_factory=list)
    #: (id, reason)
    deads: list[tuple[int, str]] = field(default_factory=list)
    releases: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.acks) + len(self.retries) + len(self.deads) + len(self.releases)


# An ordered lease skips a row while the previous row of its person (same destination) is
# queued or leased. Only the previous one need be looked at: it was itself leased only once
# the one before it was settled, and so on back (a replayed dead letter is the exception:
# it waits again, but rows after it do not wait for it). One step back the outbox_person
# index, then the row. Plain SQL (no placeholders), the same on both engines; the lease
# query aliases the outbox as `o`.
PERSON_WAITS_SQL = """AND (person IS NULL OR COALESCE((
        SELECT e.state FROM outbox AS e
        WHERE e.destination = o.destination AND e.person = o.person AND e.id < o.id
        ORDER BY e.id DESC LIMIT 1), 'none') NOT IN ('queued', 'leased'))"""

#: the states of a destination's circuit
CIRCUIT_STATES = ("closed", "open", "probing")


@dataclass(frozen=True, slots=True)
class Circuit:
    """One destination's circuit as stored in the outbox (shared by every daemon on it).

    closed: requests flow; `failures` counts failed requests since the last success.
    open: nothing is sent until `next_probe_at`, when one worker sends a single probe.
    probing: a probe is in flight (its worker claimed it until `next_probe_at`).
    `version` goes up with every change, so concurrent writers cannot overwrite each other
    (see `Outbox.swap_circuit`); 0 is a circuit never written."""

    destination: str
    state: str = "closed"
    failures: int = 0
    opened_at: float | None = None
    next_probe_at: float | None = None
    #: failed probes since the circuit opened
    probes: int = 0
    last_error: str | None = None
    version: int = 0


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A grant's row in `outbox_tokens`: the sealed token (None before the first), when it
    expires, until when a daemon's claim to fetch the next one holds, and a version that
    every change raises (compare-and-swap, as the circuits)."""

    key: str
    sealed: bytes | None = None
    expires_at: float | None = None
    fetching_until: float | None = None
    version: int = 0


@dataclass(slots=True)
class DestinationCounts:
    """What `crossdock status` shows for one destination."""

    queued: int = 0
    leased: int = 0
    retrying: int = 0
    delivered: int = 0
    dead: int = 0
    last_error: str | None = None
    #: when the last error happened: it stays after later rows are delivered
    last_error_at: float | None = None
    dropped_attributes: int = 0
    #: when the oldest row still waiting (queued, retrying or leased) was accepted: how far
    #: behind delivery is. None when nothing waits.
    oldest_waiting_at: float | None = None
    #: the destination's circuit: closed, open or probing (docs/delivery.md)
    circuit: str = "closed"
    circuit_failures: int = 0
    circuit_opened_at: float | None = None
    circuit_next_probe_at: float | None = None
    #: delivery paused by an operator (`Outbox.pause`): who, and since when (None: running)
    paused_by: str | None = None
    paused_at: float | None = None


@dataclass(frozen=True, slots=True)
class Paused:
    """A destination whose delivery an operator paused (`Outbox.pause`): every daemon on the
    outbox stops leasing its rows; they wait, queued, until it is resumed."""

    destination: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Waiting:
    """What of a destination is due now (`Outbox.waiting`): rows, their payloads' bytes (as
    stored), and when the earliest of them was accepted (None: nothing is due)."""

    rows: int = 0
    bytes: int = 0
    oldest_created_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    destination: str
    message_id: str
    attempts: int
    reason: str
    failed_at: float
    payload: dict[str, Any] = field(default_factory=dict)


#: the database engine behind an outbox and its transactions: decided here, by the outbox
#: that opened it, never guessed from the type of a connection
Dialect = Literal["sqlite", "postgresql"]


class Cursor(Protocol):
    """What a statement run through a `Transaction` returns (sqlite3's and psycopg's cursors
    alike)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction(Protocol):
    """The handle `Outbox.transaction()` yields: statements through it commit together with
    the rows the outbox writes in the same transaction. `execute` takes SQLite's `?`
    placeholders on both engines, so code shared by the engines (dedup, the profile store)
    is written once; `dialect` says which engine it runs on."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


def is_sqlite_handle(db: Transaction | Database) -> TypeGuard[Database]:
    """Whether a transaction handle is SQLite's (sqlite-utils' `Database`, which code
    shared by the engines is typed with), so sqlite-utils calls may be made on it."""
    return isinstance(db, Database)


def dialect_of(db: Transaction | Database) -> Dialect:
    """The engine a transaction handle runs on."""
    return "sqlite" if isinstance(db, Database) else db.dialect


def shared_sql(db: Transaction) -> Database:
    """A transaction handle as the sqlite-utils `Database` type that the code shared by both
    engines (the profile store, audiences) is written against. On SQLite it is one; on
    PostgreSQL, `PgTransaction` offers the part of it that code calls (`execute` with `?`
    placeholders, `conn`). This is the one place that tells the type checker so."""
    return cast(Database, db)


@dataclass(frozen=True, slots=True)
class KeptMessage:
    """An accepted message as the profile step enriched it (`crossdock.replay` turns it into
    an `EnrichedMessage` and back), kept for `outbox.keep_messages` so that a replay or a
    backfill routes it through the current filter and mapping. `person` (`NewRow.person`:
    the profile, else the userId or anonymousId) says whom it is about: erasing a person
    forgets their kept messages (`Outbox.forget_people`). `seq` is the order it was kept in
    (0 before it is)."""

    message_id: str
    enriched: dict[str, Any]
    person: str | None = None
    accepted_at: float = 0.0
    seq: int = 0


#: the states `Outbox.find_rows` and `Outbox.requeue` work on: dead letters, and delivered
#: rows re-delivered to one destination
REQUEUE_STATES = ("dead", "delivered")


@dataclass(frozen=True, slots=True)
class RowQuery:
    """Which rows of one state `Outbox.find_rows` returns: of a destination, by ids, whose
    reason (last error) contains a text, last changed (died, delivered) in [since, until)."""

    state: str = "dead"
    destination: str | None = None
    ids: Sequence[int] | None = None
    reason: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int | None = None
    #: the newest change first (a page of the latest), instead of the oldest
    newest_first: bool = False


class Outbox(Protocol):
    """Durable storage of routed messages waiting for delivery: everything the engine (the
    pipeline, the delivery workers, the collector, the fleet, the CLI) calls on one."""

    url: str
    #: names of the migrations this open applied (empty when already up to date)
    migrated: list[str]

    @property
    def dialect(self) -> Dialect:
        """The engine, for the few callers whose SQL differs between them."""
        ...

    def transaction(self) -> AbstractContextManager[Transaction]:
        """One database transaction (commit on success, rollback on error); `enqueue` and
        every statement through the yielded handle inside it commit together. Nested use
        joins the open one."""
        ...

    def health(self) -> None:
        """Ask the database a trivial question; raises when it does not answer (/healthz)."""
        ...

    @property
    def lock(self) -> AbstractContextManager[object]:
        """A reusable context manager that holds off this process's other users of the
        outbox (between two transactions), for maintenance that must not interleave with
        them; on an engine whose connections are not shared, it holds nothing."""
        ...

    async def listen(self, callback: Callable[[str], Any], *,
                     ready: asyncio.Event | None = None) -> None:
        """Call `callback(destination)` whenever any process commits new rows for it, until
        cancelled; `ready` is set once listening. An engine that cannot tell other
        processes' commits sets `ready` and returns (the workers' poll finds the rows)."""
        ...

    def enqueue(self, rows: Sequence[NewRow], now: float | None = None) -> int:
        """Insert rows in one transaction; a (destination, message_id) already present is
        skipped. Returns how many rows were new."""
        ...

    def enqueue_new(
        self, rows: Sequence[NewRow], now: float | None = None
    ) -> set[tuple[str, str]]:
        """Like `enqueue`, returning the (destination, message_id) pairs that were new."""
        ...

    def lease(
        self, destination: str, limit: int, lease_seconds: float, owner: str,
        now: float | None = None, *, ordered: bool = True,
    ) -> list[OutboxItem]:
        """Claim up to `limit` due rows of one destination under the token `owner`: queued
        rows whose next attempt is due, and leased rows whose lease expired (their worker
        died). Increments attempts. `ordered`: skip a row while an earlier row of its person
        is queued or leased (so at most one row per person is leased at a time)."""
        ...

    def extend(self, ids: Sequence[int], owner: str, lease_seconds: float,
               now: float | None = None) -> set[int]:
        """The heartbeat: leases of `ids` still held under `owner` now last `lease_seconds`
        from `now`. Returns the ids still held (the others were taken over or settled)."""
        ...

    def settle(self, owner: str, settlement: Settlement, now: float | None = None) -> int:
        """Write a settlement in one transaction; only rows still leased under `owner`
        change. The last error written becomes its destination's last_error. Returns how
        many rows changed."""
        ...

    def ack(self, ids: Sequence[int], owner: str, now: float | None = None) -> int:
        """Mark rows leased under `owner` delivered."""
        ...

    def retry(self, id: int, next_attempt_at: float, error: str, owner: str,
              now: float | None = None) -> int:
        """Return a row leased under `owner` to the queue, due at `next_attempt_at`, keeping
        the error."""
        ...

    def dead(self, id: int, reason: str, owner: str, now: float | None = None) -> int:
        """Move a row leased under `owner` to the dead letters with its reason."""
        ...

    def release(self, ids: Sequence[int], owner: str, now: float | None = None) -> int:
        """Give rows leased under `owner` back unattempted (a worker stopping before it sent
        them, or a circuit opening under a batch): queued, due now, attempts as before."""
        ...

    def waiting(self, destination: str, limit: int, now: float | None = None) -> Waiting:
        """How much of a destination is due at `now` (queued and due, or leased with an
        expired lease), counting at most `limit` rows in lease order: what a destination
        that holds rows for a window (file exports) reads before leasing."""
        ...

    def keep_together(self, ids: Sequence[int], owner: str, key: str) -> int:
        """Mark rows leased under `owner` as one kept batch named `key` (the rows of one
        export file), before it is sent: whatever happens to the send, `lease_batch` leases
        them again together. Returns how many rows were marked."""
        ...

    def lease_batch(self, destination: str, lease_seconds: float, owner: str,
                    now: float | None = None) -> list[OutboxItem]:
        """Claim every waiting row of the kept batch due first (its rows queued, or leased
        with an expired lease), however many, under the token `owner`; attempts go up by
        one. [] when no kept batch is due."""
        ...

    def next_due(self, destination: str) -> float | None:
        """When the earliest queued row of a destination is due (None: nothing queued)."""
        ...

    def schema_problems(self) -> list[str]:
        """How the database's schema differs from this code's (`schema_differences`): empty
        when current. Reads the database, so it raises when the outbox cannot be reached."""
        ...

    def counts(self) -> dict[str, DestinationCounts]:
        """Per destination: queued, leased, retrying, delivered, dead, the last error and
        the circuit's state."""
        ...

    def circuit(self, destination: str) -> Circuit:
        """A destination's stored circuit (closed, version 0, when never written)."""
        ...

    def swap_circuit(self, old: Circuit, new: Circuit, now: float | None = None) -> bool:
        """Store `new` (its version one above `old`'s) if the stored circuit is still at
        `old.version`; False when another writer got there first (read it again)."""
        ...

    def stored_token(self, key: str) -> StoredToken:
        """A grant's shared OAuth2 token row (crossdock.delivery.tokens; version 0 when
        there is none)."""
        ...

    def swap_token(self, old: StoredToken, new: StoredToken, now: float | None = None) -> bool:
        """Store `new` (its version one above `old`'s) if the stored row is still at
        `old.version`; False when another daemon got there first."""
        ...

    def reserve_rate(self, scope: str, interval: float, burst: int = 1) -> float | None:
        """Take the next slot of `scope` (a destination and rate key) in a token bucket every
        daemon on this outbox shares, one slot per `interval` seconds, `burst` back to back
        after a pause; returns the seconds until that slot (0: now), reckoned on the
        database's clock. None: this outbox keeps no shared buckets (SQLite: each daemon
        keeps its own limit in memory)."""
        ...

    def pause(self, destination: str, by: str, now: float | None = None) -> bool:
        """Stop the delivery of a destination, for every daemon on this outbox, until
        `resume`: its rows stay queued (batches in flight finish). `by` says who. False when
        it was paused already."""
        ...

    def resume(self, destination: str) -> bool:
        """Let a paused destination's rows be leased again; False when it was not paused."""
        ...

    def paused(self) -> dict[str, Paused]:
        """The paused destinations."""
        ...

    def dead_letters(self, destination: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters first, with their reasons and payloads."""
        ...

    def replay(self, destination: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Put dead letters back in the queue with fresh attempts and a fresh age (max_age
        counts from the replay: a letter that died of old age would otherwise die again at
        its first retryable failure); returns how many."""
        ...

    def find_rows(self, query: RowQuery) -> list[DeadLetter]:
        """The rows of `query.state` the query selects, oldest change first (for a delivered
        row `reason` is its last error, if any, and `failed_at` when it was delivered)."""
        ...

    def requeue(self, state: str, rows: Sequence[tuple[int, dict[str, Any] | None]],
                now: float | None = None) -> int:
        """Put rows still in `state` (dead or delivered) back in the queue with fresh
        attempts and a fresh age, as `replay` does; a row given a payload is sent with it
        instead of the stored one (re-routed). Returns how many rows changed."""
        ...

    def keep(self, messages: Sequence[KeptMessage], now: float | None = None) -> int:
        """Keep accepted messages for replay and backfill; a message id already kept is
        skipped. Joins an open `transaction()`. Returns how many were new."""
        ...

    def kept(self, message_ids: Sequence[str]) -> dict[str, KeptMessage]:
        """The kept messages of these ids (those no longer kept are missing)."""
        ...

    def kept_between(self, since: float, until: float | None, after: int = 0,
                     limit: int = 500) -> list[KeptMessage]:
        """Kept messages accepted in [since, until), `seq` above `after`, in `seq` order."""
        ...

    def forget_kept(self, accepted_before: float) -> int:
        """Forget kept messages accepted before a time (`outbox.keep_messages`)."""
        ...

    def forget_people(self, persons: Sequence[str]) -> int:
        """Forget the kept messages of erased people, by their person keys (`NewRow.person`:
        p:<profile>, u:<userId>, a:<anonymousId>). Joins an open `transaction()`."""
        ...

    def checkpoint(self, key: str) -> int:
        """The `seq` a backfill named `key` got to (0: not started)."""
        ...

    def save_checkpoint(self, key: str, seq: int) -> None:
        """Record how far a backfill got. Joins an open `transaction()`, so the rows it
        queued and its checkpoint commit together."""
        ...

    def cleanup(self, delivered_before: float) -> int:
        """Forget delivered rows older than a time (their count is kept), in short
        transactions; returns how many."""
        ...

    def row(self, destination: str, message_id: str) -> dict[str, Any] | None:
        """One row as a dict (payload decoded), for inspection and tests."""
        ...

    def close(self) -> None:
        ...


# -- shared by the engines ----------------------------------------------------------------


class OutboxBase(ABC):
    """The parts of `Outbox` both engines implement the same way around their own SQL:
    `_insert` and `_settle`."""

    def enqueue(self, rows: Sequence[NewRow], now: float | None = None) -> int:
        """Insert rows; a (destination, message_id) already present is skipped. Returns how
        many rows were new. Joins an open `transaction()`, else runs in its own."""
        return len(self._insert(rows, now))

    def enqueue_new(
        self, rows: Sequence[NewRow], now: float | None = None
    ) -> set[tuple[str, str]]:
        """Like `enqueue`, returning the (destination, message_id) pairs that were new."""
        return set(self._insert(rows, now))

    def settle(self, owner: str, settlement: Settlement, now: float | None = None) -> int:
        """Write a settlement in one transaction; only rows still leased under `owner`
        change. Returns how many rows changed."""
        if not len(settlement):
            return 0
        if settlement.retries or settlement.deads:
            settlement = Settlement(
                settlement.acks,
                [(id_, at, error_text(error)) for id_, at, error in settlement.retries],
                [(id_, error_text(reason)) for id_, reason in settlement.deads],
                settlement.releases,
            )
        return self._settle(owner, settlement, time.time() if now is None else now)

    def ack(self, ids: Sequence[int], owner: str, now: float | None = None) -> int:
        """Mark rows leased under `owner` delivered."""
        return self.settle(owner, Settlement(acks=list(ids)), now)

    def retry(self, id: int, next_attempt_at: float, error: str, owner: str,
              now: float | None = None) -> int:
        """Return a row leased under `owner` to the queue, due at `next_attempt_at`."""
        return self.settle(owner, Settlement(retries=[(id, next_attempt_at, error)]), now)

    def dead(self, id: int, reason: str, owner: str, now: float | None = None) -> int:
        """Move a row leased under `owner` to the dead letters with its reason."""
        return self.settle(owner, Settlement(deads=[(id, reason)]), now)

    def release(self, ids: Sequence[int], owner: str, now: float | None = None) -> int:
        """Give rows leased under `owner` back unattempted, due now."""
        return self.settle(owner, Settlement(releases=list(ids)), now)

    def requeue(self, state: str, rows: Sequence[tuple[int, dict[str, Any] | None]],
                now: float | None = None) -> int:
        """Put rows still in `state` back in the queue, fresh; a payload given replaces the
        stored one. Returns how many rows changed."""
        if state not in REQUEUE_STATES:
            raise ValueError(f"requeue: state must be one of {REQUEUE_STATES}, not {state!r}")
        return self._requeue(state, rows, time.time() if now is None else now)

    def keep(self, messages: Sequence[KeptMessage], now: float | None = None) -> int:
        """Keep accepted messages (a message id already kept is skipped); joins an open
        `transaction()`. Returns how many were new."""
        if not messages:
            return 0
        return self._keep(messages, time.time() if now is None else now)

    def _leased(self, found: Sequence[tuple[int, str, PayloadText, int, float]], owner: str,
                now: float) -> list[OutboxItem]:
        """The items of rows just leased, in id order; a row whose payload is not a JSON
        object goes to the dead letters (in the lease's transaction) instead of stopping
        the worker."""
        items, broken = leased_items(found)
        if broken:
            self.settle(owner, Settlement(deads=broken), now)
        return items

    @abstractmethod
    def _insert(self, rows: Sequence[NewRow], now: float | None) -> list[tuple[str, str]]:
        """Insert rows, returning the (destination, message_id) pairs that were new."""

    @abstractmethod
    def _requeue(self, state: str, rows: Sequence[tuple[int, dict[str, Any] | None]],
                 now: float) -> int:
        """`requeue` in one transaction, each change guarded by the row's state."""

    @abstractmethod
    def _keep(self, messages: Sequence[KeptMessage], now: float) -> int:
        """`keep`: insert the messages not kept yet, returning how many."""

    @abstractmethod
    def _settle(self, owner: str, settlement: Settlement, now: float) -> int:
        """`settle` in one transaction (errors already stored as `error_text`): each change
        guarded by state = 'leased' AND lease_owner = owner; the last failure (retry, then
        dead) that changed a row becomes its destination's last_error (outbox_stats)."""


def schema_differences(applied: set[str], known: Sequence[str], prefix: str) -> list[str]:
    """Migrations this code has that the database lacks (run `crossdock db upgrade`), and
    outbox migrations (named `prefix` + number) the database has that this code does not
    know (a newer Crossdock upgraded it): a daemon in either case reads or writes tables it
    does not understand. The migrations table also holds the profile store's and the dedup
    window's (their own names), which the outbox's list does not name."""
    own = re.compile(re.escape(prefix) + r"\d+_")
    problems = [f"migration {name} not applied" for name in known if name not in applied]
    problems += [f"migration {name} applied by a newer Crossdock" for name in sorted(applied)
                 if own.match(name) and name not in set(known)]
    return problems


def dropped_by_destination(
    rows: Sequence[NewRow], inserted: Iterable[tuple[str, str]]
) -> dict[str, int]:
    """Per destination, the attributes the route step dropped (a payload's `dropped`
    counts) from the rows that were new; rows already present were counted before."""
    by_key: dict[tuple[str, str], int] = {}
    last: object = None  # a run of rows sharing one payload (encoded_payloads)
    n = 0
    for row in rows:
        if row.payload is not last:
            last = row.payload
            n = _dropped(row.payload)
        if n:
            by_key[row.destination, row.message_id] = n
    totals: dict[str, int] = {}
    if by_key:
        for key in inserted:
            if key in by_key:
                totals[key[0]] = totals.get(key[0], 0) + by_key[key]
    return totals


def encoded_payloads(rows: Sequence[NewRow]) -> list[str]:
    """Each row's payload as JSON text (`encode_payload`). The rows of destinations routed
    alike share one payload object (crossdock.pipeline), next to each other in routing
    order: a run of rows sharing one is encoded once."""
    out: list[str] = []
    last: object = None
    text = ""
    for row in rows:
        if row.payload is not last:
            last = row.payload
            text = encode_payload(row.payload)
        out.append(text)
    return out


def _dropped(payload: dict[str, Any]) -> int:
    dropped = payload.get("dropped")
    if not isinstance(dropped, dict):
        return 0
    counts = dropped.values()
    # Almost every row dropped nothing: zeros need no sum (runs for every row enqueued).
    if not any(counts):
        return 0
    return sum(v for v in counts if isinstance(v, int))


def leased_items(
    found: Sequence[tuple[int, str, PayloadText, int, float]],
) -> tuple[list[OutboxItem], list[tuple[int, str]]]:
    """Leased rows (id, message_id, payload text or its UTF-8 bytes, attempts, created_at) as
    items in id order, and (id, reason) for each row whose payload is not a JSON object:
    those go to the dead letters instead of stopping the worker."""
    # Sorted as tuples (their ids differ, so only the ids are compared): no key function
    # called per row, and the items come out in id order.
    found = sorted(found)
    items: list[OutboxItem] = []
    broken: list[tuple[int, str]] = []
    for (id_, message_id, _, attempts, created_at), data in zip(
        found, decode_payloads([row[2] for row in found]), strict=True
    ):
        if isinstance(data, dict):  # almost every row: no call to say why it is not
            items.append(OutboxItem(id_, message_id, data, attempts, created_at))
        else:
            broken.append((id_, f"malformed payload in the outbox: {_not_an_object(data)}"))
    return items, broken


def _not_an_object(data: Any) -> str | None:
    if isinstance(data, ValueError):
        return str(data)
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    return None


#: `counts()`'s queries, the same on both engines, each with the partial index it reads
#: (SQLite is told to use it: `outbox {index}`; without statistics its planner preferred
#: scanning all of outbox_lease). Each repeats its index's condition word for word and reads
#: only that index: the waiting rows (their count and the oldest per state), the retrying
#: ones and the dead letters. Delivered rows, which can be millions before cleanup, are
#: never read: outbox_stats.delivered tallies them as they are acked (forgotten ones
#: included). See docs/benchmarks.md, "Operator console".
COUNTS_QUERIES: tuple[tuple[str, str], ...] = (
    ("outbox_waiting", "SELECT destination, state, COUNT(*), MIN(created_at) FROM {outbox} "
                       "WHERE state IN ('queued', 'leased') GROUP BY destination, state"),
    ("outbox_retrying", "SELECT destination, COUNT(*) FROM {outbox} "
                        "WHERE state = 'queued' AND attempts > 0 GROUP BY destination"),
    ("outbox_dead", "SELECT destination, COUNT(*) FROM {outbox} WHERE state = 'dead' "
                    "GROUP BY destination"),
)
COUNTS_STATS_SQL = ("SELECT destination, delivered, dropped_attributes, last_error, "
                    "last_error_at FROM outbox_stats")


def tally_counts(
    waiting: Iterable[tuple[str, str, int, float | None]],
    retrying: Iterable[tuple[str, int]],
    dead: Iterable[tuple[str, int]],
    stats: Iterable[tuple[str, int, int, str | None, float | None]],
    circuits: Iterable[Sequence[Any]] = (),
    paused: Iterable[Sequence[Any]] = (),
) -> dict[str, DestinationCounts]:
    """`counts()` from the rows of COUNTS_QUERIES (waiting: destination, state, rows, oldest
    created_at; retrying and dead: destination, rows),
    COUNTS_STATS_SQL (destination, delivered, dropped_attributes, last_error,
    last_error_at), the outbox_circuits rows (CIRCUIT_COLUMNS) and the outbox_paused rows
    (PAUSED_COLUMNS)."""
    result: dict[str, DestinationCounts] = {}
    for destination, state, count, oldest in waiting:
        c = result.setdefault(destination, DestinationCounts())
        if oldest is not None:
            c.oldest_waiting_at = (float(oldest) if c.oldest_waiting_at is None
                                   else min(c.oldest_waiting_at, float(oldest)))
        if state == "queued":
            c.queued += count
        else:
            c.leased += count
    for destination, count in retrying:
        result.setdefault(destination, DestinationCounts()).retrying = count
    for destination, count in dead:
        result.setdefault(destination, DestinationCounts()).dead = count
    for destination, delivered, dropped, last_error, last_error_at in stats:
        c = result.setdefault(destination, DestinationCounts())
        c.delivered = delivered
        c.dropped_attributes = dropped
        c.last_error = last_error
        c.last_error_at = None if last_error_at is None else float(last_error_at)
    for row in circuits:
        circuit = circuit_from_row(row)
        c = result.setdefault(circuit.destination, DestinationCounts())
        c.circuit = circuit.state
        c.circuit_failures = circuit.failures
        c.circuit_opened_at = circuit.opened_at
        c.circuit_next_probe_at = circuit.next_probe_at
    for row in paused:
        pause = paused_from_row(row)
        c = result.setdefault(pause.destination, DestinationCounts())
        c.paused_by, c.paused_at = pause.by, pause.at
    return result


#: the outbox_paused columns, in `Paused`'s field order
PAUSED_COLUMNS = "destination, paused_by, paused_at"


def paused_from_row(row: Sequence[Any]) -> Paused:
    """A `Paused` from an outbox_paused row read as PAUSED_COLUMNS."""
    destination, by, at = row
    return Paused(str(destination), str(by), float(at))


#: the outbox_circuits columns, in `Circuit`'s field order
CIRCUIT_COLUMNS = ("destination, state, failures, opened_at, next_probe_at, probes, "
                   "last_error, version")


def circuit_from_row(row: Sequence[Any]) -> Circuit:
    """A `Circuit` from an outbox_circuits row read as CIRCUIT_COLUMNS."""
    destination, state, failures, opened, probe_at, probes, error, version = row
    return Circuit(str(destination), str(state), int(failures),
                   None if opened is None else float(opened),
                   None if probe_at is None else float(probe_at), int(probes), error,
                   int(version))


def circuit_values(circuit: Circuit) -> list[Any]:
    """A circuit's column values, in CIRCUIT_COLUMNS order."""
    return [circuit.destination, circuit.state, circuit.failures, circuit.opened_at,
            circuit.next_probe_at, circuit.probes, circuit.last_error, circuit.version]


#: the outbox_tokens columns, in `StoredToken`'s field order
TOKEN_COLUMNS = "key, sealed, expires_at, fetching_until, version"


def token_from_row(key: str, row: Sequence[Any] | None) -> StoredToken:
    """A `StoredToken` from an outbox_tokens row read as TOKEN_COLUMNS (None: no row yet)."""
    if row is None:
        return StoredToken(key)
    _, sealed, expires_at, fetching_until, version = row
    return StoredToken(key, None if sealed is None else bytes(sealed),
                       None if expires_at is None else float(expires_at),
                       None if fetching_until is None else float(fetching_until), int(version))


def dead_letters_from(
    rows: Sequence[tuple[int, str, str, int, str | None, float, str]],
) -> list[DeadLetter]:
    """Dead letters from (id, destination, message_id, attempts, last_error, updated_at,
    payload text) rows. A payload that is not a JSON object is shown as {"_raw": text}."""
    letters = []
    for (id_, dest, message_id, attempts, reason, failed_at, text), data in zip(
        rows, decode_payloads([row[6] for row in rows]), strict=True
    ):
        payload = data if _not_an_object(data) is None else {"_raw": text}
        letters.append(DeadLetter(id_, dest, message_id, attempts, reason or "", failed_at,
                                  payload))
    return letters


#: the outbox_messages columns `kept_from` reads
KEPT_COLUMNS = "seq, message_id, enriched, person, accepted_at"


def kept_from(rows: Sequence[tuple[int, str, str, str | None, float]]) -> list[KeptMessage]:
    """Kept messages from (seq, message_id, enriched text, person, accepted_at)
    rows; one whose text is not a JSON object (it cannot be re-routed) is left out."""
    kept = []
    for (seq, message_id, _, person, at), data in zip(
        rows, decode_payloads([row[2] for row in rows]), strict=True
    ):
        if _not_an_object(data) is None:
            kept.append(KeptMessage(message_id, data, person, float(at), int(seq)))
    return kept


def find_rows_sql(query: RowQuery, *, postgres: bool) -> tuple[str, list[Any]]:
    """The query of `find_rows` and its parameters, in the engine's placeholders: rows read
    as `dead_letters_from` takes them, oldest change first (newest with `newest_first`)."""
    where, params = _row_filter(query, postgres=postgres)
    limit = "" if query.limit is None else f" LIMIT {int(query.limit)}"
    order = "updated_at DESC, id DESC" if query.newest_first else "updated_at, id"
    return ("SELECT id, destination, message_id, attempts, last_error, updated_at, payload "
            f"FROM outbox WHERE {where} ORDER BY {order}{limit}", params)


def _row_filter(query: RowQuery, *, postgres: bool) -> tuple[str, list[Any]]:
    if query.state not in REQUEUE_STATES:
        raise ValueError(f"find_rows: state must be one of {REQUEUE_STATES}")
    mark = "%s" if postgres else "?"
    where = [f"state = {mark}"]
    params: list[Any] = [query.state]
    if query.destination is not None:
        where.append(f"destination = {mark}")
        params.append(query.destination)
    if query.ids is not None:
        if postgres:
            where.append("id = ANY(%s)")
            params.append(list(query.ids))
        else:
            where.append(f"id IN ({','.join('?' * len(query.ids))})")
            params += list(query.ids)
    if query.reason is not None:
        # A substring search, not LIKE: the text as typed, % and _ included, case and all.
        where.append(f"strpos(COALESCE(last_error, ''), {mark}) > 0" if postgres
                     else "instr(COALESCE(last_error, ''), ?) > 0")
        params.append(query.reason)
    if query.since is not None:
        where.append(f"updated_at >= {mark}")
        params.append(query.since)
    if query.until is not None:
        where.append(f"updated_at < {mark}")
        params.append(query.until)
    return " AND ".join(where), params


def decoded_row(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """An outbox row as a dict, its payload decoded (the text kept when it is not JSON)."""
    data = dict(zip(names, values, strict=True))
    (payload,) = decode_payloads([data["payload"]])
    data["payload"] = data["payload"] if isinstance(payload, ValueError) else payload
    return data


def error_text(text: str) -> str:
    """An error or dead-letter reason as stored: NUL (which a PostgreSQL text column cannot
    hold, and which may come in a destination's response body or a payload value a plugin
    quotes) is written as the four characters \\x00, on both engines alike."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text
