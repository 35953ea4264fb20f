"""Versioned schema migrations of the SQLite outbox, in the style of llm.

Each migration is a function `mNNN_name(db)` decorated with `@migration`; the names of applied
migrations are recorded in `_crossdock_migrations`, so `upgrade(db)` applies only new ones, in
order, each in its own transaction. A migration may add tables, columns and indexes; it must
never drop queued rows (operators upgrade with messages still waiting).

Other stores living in the same file (the profile store) keep their own list and call
`apply_migrations(db, their_list)`: the table records names, so prefixes keep them apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlite_utils import Database

from crossdock.errors import OutboxError

MIGRATIONS_TABLE = "_crossdock_migrations"

Migration = Callable[[Database], None]
OUTBOX_MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register an outbox migration; they run in the order they are defined."""
    OUTBOX_MIGRATIONS.append(fn)
    return fn


@contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); joins a transaction already open.

    IMMEDIATE takes the write lock up front, so two processes never both read and then both
    try to write (the source of SQLITE_BUSY errors that busy_timeout cannot wait out).
    """
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def applied(db: Database) -> set[str]:
    """Names of the migrations already applied to this database."""
    if not db[MIGRATIONS_TABLE].exists():
        return set()
    return {row["name"] for row in db[MIGRATIONS_TABLE].rows_where(select="name")}


def apply_migrations(db: Database, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    db.table(MIGRATIONS_TABLE).create({"name": str, "applied_at": float}, pk="name",
                                not_null={"applied_at"}, if_not_exists=True)
    names: list[str] = []
    for fn in migrations:
        try:
            # Checked inside the write lock: another process may be upgrading the same file.
            with immediate(db):
                if fn.__name__ in applied(db):
                    continue
                fn(db)
                # sqlite-utils writes inside the open transaction (a savepoint of it).
                db.table(MIGRATIONS_TABLE).insert({"name": fn.__name__, "applied_at": time.time()})
        except Exception as exc:
            raise OutboxError(f"migration {fn.__name__} failed: {exc}") from exc
        names.append(fn.__name__)
    return names


def upgrade(db: Database) -> list[str]:
    """Bring the outbox schema up to date (for `crossdock db upgrade`); returns applied names."""
    return apply_migrations(db, OUTBOX_MIGRATIONS)


@migration
def m001_initial(db: Database) -> None:
    # next_attempt_at doubles as the lease expiry of a leased row, so one index range
    # (state IN (queued, leased) AND next_attempt_at <= now) finds both due and abandoned rows.
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            destination TEXT NOT NULL,
            message_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'leased', 'delivered', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            lease_owner TEXT,
            lease_expires_at REAL,
            last_error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (destination, message_id)
        )
        """
    )
    db.execute(
        "CREATE INDEX outbox_lease ON outbox (destination, state, next_attempt_at)"
    )
    # Per-destination figures that outlive the rows: delivered rows forgotten by cleanup,
    # the latest error, attributes the route step dropped.
    db.execute(
        """
        CREATE TABLE outbox_stats (
            destination TEXT PRIMARY KEY,
            delivered_forgotten INTEGER NOT NULL DEFAULT 0,
            dropped_attributes INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_error_at REAL
        )
        """
    )


@migration
def m002_person_order_and_circuits(db: Database) -> None:
    # Per-person order (base.py): the person key of each row, and the index the ordered
    # lease finds a person's previous row with. Partial on the person only, not on the state:
    # a lease or an ack then leaves the index alone (one that depended on the state was
    # rewritten at both, and cost lease + ack a sixth of its speed).
    db.execute("ALTER TABLE outbox ADD COLUMN person TEXT")
    db.execute(
        "CREATE INDEX outbox_person ON outbox (destination, person, id) "
        "WHERE person IS NOT NULL"
    )
    # Each destination's circuit (crossdock.delivery.circuit), read by `crossdock status`
    # from another process; `version` makes every change a compare-and-swap.
    db.execute(
        """
        CREATE TABLE outbox_circuits (
            destination TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('closed', 'open', 'probing')),
            failures INTEGER NOT NULL DEFAULT 0,
            opened_at REAL,
            next_probe_at REAL,
            probes INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )


@migration
def m003_tokens(db: Database) -> None:
    # OAuth2 access tokens shared by the processes on this outbox (crossdock.delivery.tokens),
    # one row per grant, the token sealed (AES-GCM under a key derived from the grant's
    # secrets, which the database never holds); `version` makes every change a
    # compare-and-swap, `fetching_until` one process's claim to fetch the next token.
    db.execute(
        """
        CREATE TABLE outbox_tokens (
            key TEXT PRIMARY KEY,
            sealed BLOB,
            expires_at REAL,
            fetching_until REAL,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )


@migration
def m004_kept_batches(db: Database) -> None:
    # File exports (docs/exports.md): the rows put in one file are marked with the batch's
    # key before the upload starts, so a failed or abandoned file is leased again whole and
    # put again under the same name. The partial index holds only keyed rows still waiting,
    # so delivered files cost it nothing and a lease of a kept batch never scans them.
    db.execute("ALTER TABLE outbox ADD COLUMN batch_key TEXT")
    db.execute(
        "CREATE INDEX outbox_batch_due ON outbox (destination, next_attempt_at) "
        "WHERE batch_key IS NOT NULL AND state IN ('queued', 'leased')"
    )
    db.execute(
        "CREATE INDEX outbox_batch ON outbox (destination, batch_key) "
        "WHERE batch_key IS NOT NULL"
    )


@migration
def m005_kept_messages(db: Database) -> None:
    # Accepted messages kept for `outbox.keep_messages` (docs/delivery.md, "Replay"): a replay
    # or a backfill routes them through the current filter and mapping. `seq` orders them
    # (a backfill's checkpoint); `person` (p:<profile>, u:<userId>, a:<anonymousId>) lets an
    # erasure forget a person's messages.
    db.execute(
        """
        CREATE TABLE outbox_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL UNIQUE,
            enriched TEXT NOT NULL,
            person TEXT,
            accepted_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX outbox_messages_accepted ON outbox_messages (accepted_at)")
    db.execute("CREATE INDEX outbox_messages_person ON outbox_messages (person)")


@migration
def m006_backfill_checkpoints(db: Database) -> None:
    # How far each backfill got (docs/delivery.md, "Backfill"): the seq of the last kept
    # message it routed, written in the transaction that queued its rows.
    db.execute(
        """
        CREATE TABLE outbox_checkpoints (
            key TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )


@migration
def m007_paused(db: Database) -> None:
    # Destinations whose delivery an operator paused (the console, docs/console.md): every
    # daemon on the outbox reads it before leasing, so a fleet obeys one pause.
    db.execute(
        """
        CREATE TABLE outbox_paused (
            destination TEXT PRIMARY KEY,
            paused_by TEXT NOT NULL,
            paused_at REAL NOT NULL
        )
        """
    )


@migration
def m008_fast_counts(db: Database) -> None:
    # `counts()` (crossdock status, the console's overview) without reading every row
    # (docs/benchmarks.md, "Operator console"). Each index is partial on a condition a fresh
    # row, a lease and an ack leave false or unchanged where they can, so the hot path pays
    # little (measured there):
    # - the waiting rows by state and age: their count and the oldest (delivery lag) from
    #   the index alone. A lease rewrites a row's entry, an ack removes it.
    db.execute(
        "CREATE INDEX outbox_waiting ON outbox (destination, state, created_at) "
        "WHERE state IN ('queued', 'leased')"
    )
    # - rows queued again after a failed attempt: only a retry puts a row in it. (Columns
    #   of the condition are in the index too: SQLite counts from an index alone only
    #   when it holds every column the query names.)
    db.execute(
        "CREATE INDEX outbox_retrying ON outbox (destination, state, attempts) "
        "WHERE state = 'queued' AND attempts > 0"
    )
    # - dead letters newest first, of every destination and of one (the dead-letter list).
    db.execute(
        "CREATE INDEX outbox_dead_recent ON outbox (updated_at, id) WHERE state = 'dead'"
    )
    db.execute(
        "CREATE INDEX outbox_dead ON outbox (destination, state, updated_at, id) "
        "WHERE state = 'dead'"
    )
    # - delivered rows, which can be millions before cleanup, are tallied as they are acked
    #   (forgotten ones included), starting from what the table holds now.
    db.execute("ALTER TABLE outbox_stats ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "INSERT INTO outbox_stats (destination, delivered) "
        "SELECT destination, COUNT(*) FROM outbox WHERE state = 'delivered' "
        "GROUP BY destination ORDER BY destination "
        "ON CONFLICT (destination) DO UPDATE SET delivered = excluded.delivered"
    )
    db.execute("UPDATE outbox_stats SET delivered = delivered + delivered_forgotten")


@migration
def m009_console_sessions(db: Database) -> None:
    # The console's logins (crossdock.console.auth), in the outbox so every daemon of a fleet
    # accepts a session another issued and a logout ends it for all. Only the SHA-256 of the
    # cookie's random id is kept (a reader of the database cannot take over a session);
    # `credential` is a salted slow hash of the credential at login, so changing it ends the
    # session without any key derived from it.
    db.execute(
        """
        CREATE TABLE console_sessions (
            id_hash TEXT PRIMARY KEY,
            user_name TEXT NOT NULL,
            role TEXT NOT NULL,
            credential TEXT NOT NULL,
            csrf TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            last_seen_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)")
