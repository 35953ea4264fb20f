"""Duplicate detection: a `messageId` or `x-request-id` seen inside the window is dropped.

The keys live in the same SQLite file as the outbox (table `dedup_keys`) and are written in the
same transaction as the accepted message, so a request re-sent after a crash or a restart is
recognised exactly when its first copy was durably queued, never before.
"""

from __future__ import annotations

from sqlite_utils import Database

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
    def migrate(db: Database) -> list[str]:
        return apply_migrations(db, DEDUP_MIGRATIONS)

    def seen(self, db: Database, key: str, now: float) -> bool:
        """Whether `key` was recorded less than `window` seconds before `now`."""
        row = db.execute("SELECT seen_at FROM dedup_keys WHERE key = ?", [key]).fetchone()
        return row is not None and now - float(row[0]) < self.window

    def remember(self, db: Database, key: str, now: float) -> None:
        """Record `key` as seen at `now` (a key older than the window starts a new one)."""
        db.execute(
            "INSERT INTO dedup_keys (key, seen_at) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at",
            [key, now],
        )

    def check_and_remember(self, db: Database, key: str, now: float) -> bool:
        """True if `key` is a duplicate; otherwise record it and return False."""
        if self.seen(db, key, now):
            return True
        self.remember(db, key, now)
        return False

    def purge(self, db: Database, now: float) -> int:
        """Forget keys older than the window; returns how many."""
        cursor = db.execute("DELETE FROM dedup_keys WHERE seen_at <= ?", [now - self.window])
        return int(cursor.rowcount)
