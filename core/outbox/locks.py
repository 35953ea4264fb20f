"""The one lock space of a PostgreSQL outbox's database: transaction-scoped advisory locks.

Everything several daemons may decide at once about the same thing takes its key's lock
first, in one global order (by lock number), so concurrent transactions queue instead of
deadlocking: dedup keys (crossdock.dedup), identities and profiles (crossdock.profiles),
audiences (crossdock.audiences.membership). SQLite needs none: its writers are already
serialized by BEGIN IMMEDIATE, so every call here is a no-op there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlite_utils import Database

from crossdock.outbox.base import Transaction, dialect_of


def is_postgres(db: Database | Transaction) -> bool:
    """Whether `db` (a transaction handle from an outbox) is PostgreSQL rather than SQLite."""
    return dialect_of(db) == "postgresql"


def lock_id(key: str) -> int:
    """The 64-bit advisory lock number of a key. Computed here rather than with hashtext() so
    that callers can sort by it: a lock order by number is deadlock-free even when two keys
    collide on one number."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big",
                          signed=True)


def lock_keys(db: Database | Transaction, keys: Iterable[str]) -> None:
    """On PostgreSQL, take the transaction-scoped advisory locks of `keys`, in lock-number
    order (released at commit or rollback; taking one already held returns at once). A no-op
    on SQLite, whose transactions already exclude each other."""
    if not is_postgres(db):
        return
    ids = sorted({lock_id(k) for k in keys})
    if ids:
        # unnest() yields the array in order, so the locks are taken in that order.
        db.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k", [ids])
