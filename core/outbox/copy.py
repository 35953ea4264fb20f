"""Copying an outbox's database into another (`crossdock db copy`, docs/postgresql.md): the
rows still to send and the dead letters, each destination's figures, the dedup window and
the tables of the stores that share the database (the profile store, the audiences), on
either engine to either engine.

The stores' tables are not named here: each store declares them as `StoreTables`
(crossdock.profiles.migrations.PROFILE_TABLES, crossdock.audiences.membership.AUDIENCE_TABLES)
and crossdock.schema passes them in, so the outbox depends on no store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from crossdock.errors import CrossdockError
from crossdock.outbox import Outbox, is_postgres, is_sqlite
from crossdock.outbox.base import shared_sql

COPY_PAGE = 2000

_COLUMNS = ("destination, message_id, payload, person, state, attempts, next_attempt_at, "
            "last_error, created_at, updated_at")


@dataclass
class CopyReport:
    """Rows read from the source and written to the target, by state."""

    read: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    already_there: int = 0
    #: rows that were leased in the source (their daemons are stopped): copied as queued
    requeued_leases: int = 0
    dedup_keys: int = 0
    #: destinations whose figures (delivered so far, dropped attributes, last error) came along
    stats: int = 0
    #: profile store and audience tables: rows written to the target, by table
    tables: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        states = sorted(set(self.read) | set(self.written))
        parts = [f"{s}: {self.written.get(s, 0)} of {self.read.get(s, 0)}" for s in states]
        text = (f"copied {sum(self.written.values())} rows ({', '.join(parts) or 'none'}); "
                f"{self.requeued_leases} leased rows queued again; "
                f"{self.already_there} already in the target; {self.dedup_keys} dedup keys; "
                f"figures of {self.stats} destinations")
        if self.tables:
            text += (f"; {self.tables.get('profiles', 0)} profiles, "
                     f"{self.tables.get('audience_members', 0)} audience members "
                     f"({sum(self.tables.values())} profile and audience rows)")
        return text


@dataclass(frozen=True)
class StoreTables:
    """The tables a store keeps in its outbox's database, copied whole by `copy_outbox`
    (the same columns on both engines)."""

    tables: tuple[str, ...]
    #: SQLite: create or upgrade them in a target that has none yet (PostgreSQL: the outbox's
    #: own migrations made them)
    migrate: Callable[[Database], object]
    #: tables whose `id` numbers rows (audience changes' name audience events' messageIds):
    #: on PostgreSQL the target's next id must come after the copied ones
    numbered: tuple[str, ...] = ()
    #: (table, key column) whose rows in the target, when not in the source, make it "not
    #: empty": the target has a store of its own
    own_rows: tuple[tuple[str, str], ...] = ()


class TargetNotEmpty(CrossdockError):
    """The target already holds a profile store of its own."""


def _pages(source: Outbox, states: tuple[str, ...]) -> Iterator[list[tuple[Any, ...]]]:
    """The source's rows in `states`, in id order, a page at a time (one short read
    transaction per page, so a big outbox is never held in memory)."""
    last = -1
    marks = ", ".join("?" * len(states))
    while True:
        with source.transaction() as tx:
            db = shared_sql(tx)
            page = db.execute(
                f"SELECT id, {_COLUMNS} FROM outbox WHERE id > ? AND state IN ({marks}) "
                "ORDER BY id LIMIT ?",
                [last, *states, COPY_PAGE],
            ).fetchall()
        if not page:
            return
        last = page[-1][0]
        yield [tuple(row[1:]) for row in page]


def copy_outbox(source: Outbox, target: Outbox, *, include_delivered: bool = False,
                now: float | None = None, profiles: str = "copy",
                stores: Sequence[StoreTables] = (),
                migrate_dedup: Callable[[Database], object] | None = None) -> CopyReport:
    """Copy rows from `source` into `target`, keeping states, attempts, due times, errors and
    payloads. Leased rows arrive queued and due now (the daemons holding them are stopped);
    a (destination, message_id) already in the target is left as it is, so running the copy
    twice copies nothing twice. Dedup keys come along so the window still holds
(`migrate_dedup` makes their table in a SQLite target that has none).

    `profiles`: "copy" also copies the `stores`' tables (the profile store and audience
    members), row for row (rows
    already in the target are left as they are), and raises TargetNotEmpty, before writing
    anything, when the target holds profiles or audience changes the source does not (its
    own profile store: the two would mix); "replace" empties the target's profile and audience
    tables first; "skip" leaves them alone."""
    if profiles not in ("copy", "replace", "skip"):
        raise ValueError(f"profiles: copy, replace or skip, got {profiles!r}")
    now = time.time() if now is None else now
    tables: list[str] = []
    if profiles != "skip":
        if is_sqlite(target):
            for store in stores:
                store.migrate(target.db)
        tables = [t for store in stores for t in store.tables if _has_table(source, t)]
        if profiles == "copy":
            _refuse_foreign(source, target, tables, stores)
    states = ("queued", "leased", "dead") + (("delivered",) if include_delivered else ())
    report = CopyReport()
    ph = "%s" if is_postgres(target) else "?"
    # Payloads are JSON text on both engines (PostgreSQL's since pg_006), copied unchanged.
    insert = (f"INSERT INTO outbox ({_COLUMNS}) VALUES "
              f"({', '.join([ph] * 10)}) "
              "ON CONFLICT (destination, message_id) DO NOTHING")
    # A destination the target has figures for keeps them (_copy_stats writes none), so the
    # delivered rows copied to it are added to its delivered tally as they are written.
    with target.transaction() as tx:
        in_use = {str(d) for (d,) in shared_sql(tx).execute(
            "SELECT destination FROM outbox_stats", []).fetchall()}
    for page in _pages(source, states):
        params = []
        for dest, mid, payload, person, state, attempts, due, error, created, updated in page:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            if state == "leased":
                state, due = "queued", now
                report.requeued_leases += 1
            report.read[state] = report.read.get(state, 0) + 1
            params.append((dest, mid, text, person, state, attempts, due, error, created,
                           updated))
        # Delivered rows of a destination in use go in by destination, to tally each.
        groups: dict[tuple[str, str | None], list[tuple[Any, ...]]] = {}
        for row in params:
            tallied = row[4] == "delivered" and row[0] in in_use
            groups.setdefault((row[4], row[0] if tallied else None), []).append(row)
        with target.transaction() as tx:
            db = shared_sql(tx)
            for (state, tallied_destination), rows in sorted(
                    groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
                cursor = db.conn.cursor()
                cursor.executemany(insert, rows)
                written = max(cursor.rowcount, 0)
                report.written[state] = report.written.get(state, 0) + written
                report.already_there += len(rows) - written
                if tallied_destination is not None and written:
                    db.execute("UPDATE outbox_stats SET delivered = delivered + ? "
                               "WHERE destination = ?", [written, tallied_destination])
    report.stats = _copy_stats(source, target, ph, include_delivered=include_delivered)
    report.dedup_keys = _copy_dedup(source, target, ph, migrate_dedup)
    if profiles != "skip":
        report.tables = _copy_tables(source, target, tables, stores, ph,
                                     replace=profiles == "replace")
    if is_postgres(target):
        destinations = {d for d, *_ in _queued_destinations(target)}
        channel = target.channel
        with target.transaction() as tx:
            db = shared_sql(tx)
            for destination in sorted(destinations):
                # The target's own channel: one per schema, as its daemons LISTEN.
                db.conn.execute("SELECT pg_notify(%s, %s)", [channel, destination])
    return report


def _queued_destinations(outbox: Outbox) -> list[tuple[str]]:
    with outbox.transaction() as tx:
        db = shared_sql(tx)
        return list(db.execute(
            "SELECT DISTINCT destination FROM outbox WHERE state = 'queued'", []).fetchall())


def _has_table(outbox: Outbox, name: str) -> bool:
    with outbox.transaction() as tx:
        db = shared_sql(tx)
        if is_postgres(outbox):
            row = db.execute("SELECT to_regclass(?) IS NOT NULL", [name]).fetchone()
            return bool(row[0])
        return bool(db[name].exists())


def _copy_stats(source: Outbox, target: Outbox, ph: str, *, include_delivered: bool) -> int:
    """Each destination's figures that `crossdock status` shows beside the rows: delivered so
    far (the delivered rows left behind count as forgotten ones), attributes the route step
    dropped, the last error. Written only for destinations the target has no figures for, so
    a second copy changes nothing and a target in use keeps its own."""
    with source.transaction() as tx:
        db = shared_sql(tx)
        # `delivered` (the tally counts() reads) counts the delivered rows in the table
        # whether they are copied or not; delivered_forgotten only the ones left behind.
        stats = {str(r[0]): list(r[1:]) for r in db.execute(
            "SELECT destination, delivered_forgotten, dropped_attributes, last_error, "
            "last_error_at, delivered FROM outbox_stats", []).fetchall()}
        if not include_delivered:
            for destination, delivered in db.execute(
                    "SELECT destination, COUNT(*) FROM outbox WHERE state = 'delivered' "
                    "GROUP BY destination", []).fetchall():
                row = stats.setdefault(str(destination), [0, 0, None, None, delivered])
                row[0] += delivered
    if not stats:
        return 0
    with target.transaction() as tx:
        db = shared_sql(tx)
        cursor = db.conn.cursor()
        cursor.executemany(
            "INSERT INTO outbox_stats (destination, delivered_forgotten, dropped_attributes, "
            f"last_error, last_error_at, delivered) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (destination) DO NOTHING",
            [(d, *row) for d, row in sorted(stats.items())])
        return max(cursor.rowcount, 0)


def _copy_dedup(source: Outbox, target: Outbox, ph: str,
                migrate: Callable[[Database], object] | None) -> int:
    if not _has_table(source, "dedup_keys"):
        return 0
    if not _has_table(target, "dedup_keys"):
        if not is_sqlite(target) or migrate is None:  # PostgreSQL's migrations made it
            return 0
        migrate(target.db)
    with source.transaction() as tx:
        db = shared_sql(tx)
        keys = db.execute("SELECT key, seen_at FROM dedup_keys", []).fetchall()
    copied = 0
    if keys:
        with target.transaction() as tx:
            db = shared_sql(tx)
            cursor = db.conn.cursor()
            cursor.executemany(
                f"INSERT INTO dedup_keys (key, seen_at) VALUES ({ph}, {ph}) "
                "ON CONFLICT (key) DO NOTHING", [tuple(k) for k in keys])
            copied = max(cursor.rowcount, 0)
    return copied


def _refuse_foreign(source: Outbox, target: Outbox, tables: list[str],
                    stores: Sequence[StoreTables]) -> None:
    """TargetNotEmpty when the target holds rows of a store's `own_rows` that the source does
    not (rows a previous, interrupted copy wrote are the source's: the copy may run again)."""
    for table, key in [own for store in stores for own in store.own_rows]:
        if table not in tables:
            continue
        last: Any = None
        while True:
            with target.transaction() as tx:
                db = shared_sql(tx)
                where, params = ("", []) if last is None else (f"WHERE {key} > ?", [last])
                keys = [r[0] for r in db.execute(
                    f"SELECT {key} FROM {table} {where} ORDER BY {key} LIMIT ?",
                    [*params, COPY_PAGE]).fetchall()]
            if not keys:
                break
            last = keys[-1]
            with source.transaction() as tx:
                db = shared_sql(tx)
                marks = ", ".join("?" * len(keys))
                known = {r[0] for r in db.execute(
                    f"SELECT {key} FROM {table} WHERE {key} IN ({marks})", keys).fetchall()}
            foreign = [k for k in keys if k not in known]
            if foreign:
                raise TargetNotEmpty(
                    f"the target already has a profile store of its own ({table} "
                    f"{foreign[0]!r} is not in the source); copying would mix the two. "
                    "Use --replace-profiles to replace it with the source's, or "
                    "--skip-profiles to copy only the outbox rows")


def _copy_tables(source: Outbox, target: Outbox, tables: list[str],
                 stores: Sequence[StoreTables], ph: str, *, replace: bool) -> dict[str, int]:
    """Copy `tables` whole, a page at a time; rows whose key is already in the target are
    left as they are. Returns the rows written per table."""
    written: dict[str, int] = {}
    if replace:
        with target.transaction() as tx:
            db = shared_sql(tx)
            for table in [t for store in stores for t in store.tables]:
                db.execute(f"DELETE FROM {table}")
    for table in tables:
        written[table] = 0
        with source.transaction() as tx:
            src = shared_sql(tx)
            cursor = src.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            insert = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                      f"({', '.join([ph] * len(columns))}) ON CONFLICT DO NOTHING")
            while page := cursor.fetchmany(COPY_PAGE):
                with target.transaction() as tx:
                    db = shared_sql(tx)
                    out = db.conn.cursor()
                    out.executemany(insert, [tuple(row) for row in page])
                    written[table] += max(out.rowcount, 0)
    if is_postgres(target):
        with target.transaction() as tx:
            db = shared_sql(tx)
            for table in [t for store in stores for t in store.numbered]:
                # The next id after the copied ones (new audience changes must not reuse
                # a copied change's number: it names the events' messageIds).
                db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"COALESCE(MAX(id), 0) + 1, false) FROM {table}")
    return written


