"""Duplicate detection: a `messageId` or `x-request-id` seen inside the window is dropped.

The keys live in the outbox's own database (table `dedup_keys`, SQLite or PostgreSQL) and are
written in the same transaction as the accepted message, so a request re-sent after a crash or
a restart is recognised exactly when its first copy was durably queued, never before.

On PostgreSQL two daemons may receive the same key at the same moment. `seen` therefore first
takes a transaction-scoped advisory lock on the key (`lock_keys`): the second transaction waits
for the first to commit or roll back, then reads the key it recorded. SQLite needs no lock: its
writers are already serialized by BEGIN IMMEDIATE. The same `lock_keys` serializes the profile
store's identity keys (crossdock.profiles.store): one lock space (crossdock.outbox.locks)
orders them all.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlite_utils import Database

from crossdock.outbox.base import Transaction, is_sqlite_handle
from crossdock.outbox.locks import lock_keys
from crossdock.outbox.migrations import Migration, apply_migrations

DEFAULT_WINDOW = 4 * 3600.0


def m_dedup_001_keys(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS dedup_keys (key TEXT PRIMARY KEY, seen_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS dedup_keys_seen_at ON dedup_keys (seen_at)")


DEDUP_MIGRATIONS: list[Migration] = [m_dedup_001_keys]


def message_key(message_id: str) -> str:
    return f"m:{message_id}"


def request_key(credential: str, request_id: str) -> str:
    # Per credential: two tenants may well pick the same request id.
    return f"r:{credential}:{request_id}"


class Dedup:
    """Keys seen in the last `window` seconds. Every method takes the `db` of the caller's
    transaction, so checks and records commit (or roll back) with the message itself."""

    def __init__(self, window: float = DEFAULT_WINDOW) -> None:
        self.window = window

    @staticmethod
    def migrate(db: Database | Transaction) -> list[str]:
        """Create the table in SQLite (on PostgreSQL the outbox's migrations own it)."""
        if not is_sqlite_handle(db):
            return []
        return apply_migrations(db, DEDUP_MIGRATIONS)

    def seen(self, db: Database | Transaction, key: str, now: float) -> bool:
        """Whether `key` was recorded less than `window` seconds before `now`. On PostgreSQL
        this waits for a concurrent transaction holding the same key to finish first."""
        self.lock(db, [key])
        row = db.execute("SELECT seen_at FROM dedup_keys WHERE key = ?", [key]).fetchone()
        return row is not None and now - float(row[0]) < self.window

    @staticmethod
    def lock(db: Database | Transaction, keys: Iterable[str]) -> None:
        """On PostgreSQL, take the locks `seen` takes for all of `keys` at once, in lock order
        (a transaction that checks several keys takes them in one sorted set, as
        crossdock.outbox.locks requires, before any other lock)."""
        lock_keys(db, [Dedup.lock_name(key) for key in keys])

    @staticmethod
    def lock_name(key: str) -> str:
        """The advisory lock (crossdock.outbox.locks) that guards `key`."""
        return f"dedup:{key}"

    def remember(self, db: Database | Transaction, key: str, now: float) -> None:
        """Record `key` as seen at `now` (a key older than the window starts a new one)."""
        db.execute(
            "INSERT INTO dedup_keys (key, seen_at) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at",
            [key, now],
        )

    def check_and_remember(self, db: Database | Transaction, key: str, now: float) -> bool:
        """True if `key` is a duplicate; otherwise record it and return False."""
        if self.seen(db, key, now):
            return True
        self.remember(db, key, now)
        return False

    def purge(self, db: Database | Transaction, now: float) -> int:
        """Forget keys older than the window; returns how many."""
        cursor = db.execute("DELETE FROM dedup_keys WHERE seen_at <= ?", [now - self.window])
        return int(cursor.rowcount)
