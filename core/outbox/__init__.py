"""Step 4: the durable outbox, one row per (destination, message).

`open_outbox(url)` picks the implementation from the URL: sqlite:///path (embedded default) or
postgresql://... (many daemons). Both implement `Outbox` in base.py and pass the same tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

from crossdock.errors import OutboxError
from crossdock.outbox.base import DeadLetter, DestinationCounts, NewRow, Outbox
from crossdock.outbox.dsn import redact

if TYPE_CHECKING:
    from crossdock.outbox.postgres import PostgresOutbox
    from crossdock.outbox.sqlite import SQLiteOutbox

__all__ = ["DeadLetter", "DestinationCounts", "NewRow", "Outbox", "is_postgres", "is_sqlite",
           "open_outbox"]


def is_sqlite(outbox: Outbox) -> TypeGuard[SQLiteOutbox]:
    """Whether the outbox is the SQLite file (by its declared `dialect`), for the callers
    that use what only that engine has (its file, WAL checkpoints, sqlite-utils tables)."""
    return outbox.dialect == "sqlite"


def is_postgres(outbox: Outbox) -> TypeGuard[PostgresOutbox]:
    """Whether the outbox is PostgreSQL (by its declared `dialect`): the fleet's tables,
    advisory locks."""
    return outbox.dialect == "postgresql"


def open_outbox(url: str) -> Outbox:
    """Open (creating and upgrading as needed) the outbox at `url`.

    sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:,
    postgresql://user@host/db.
    """
    if url.startswith("sqlite:///"):
        from crossdock.outbox.sqlite import SQLiteOutbox

        return SQLiteOutbox(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from crossdock.outbox.postgres import PostgresOutbox
        except ModuleNotFoundError as exc:
            if exc.name == "psycopg" or (exc.name or "").startswith("psycopg."):
                # psycopg is the `postgres` extra: an SQLite user does not install it.
                raise OutboxError(
                    f"{redact(url)}: the PostgreSQL outbox needs psycopg, which is not "
                    "installed: pip install 'crossdock[postgres]'") from exc
            raise
        return PostgresOutbox(url)
    raise OutboxError("outbox url must start with sqlite:/// or postgresql://, got "
                      f"{redact(url)!r}")
