"""`crossdock db ...`: schema upgrades and moving an outbox between engines.

    crossdock db upgrade                      migrate the configured outbox (SQLite or PostgreSQL)
    crossdock db copy --from URL --to URL     copy queued, retrying and dead rows (and the dedup
                                              window) from one outbox to another

`copy` is how an operator moves from SQLite to PostgreSQL without losing queued messages (see
docs/postgresql.md): stop the daemons, copy, point the config at the new URL, start them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import click

from crossdock.errors import CrossdockError
from crossdock.outbox import Outbox, open_outbox

COPY_PAGE = 2000

_COLUMNS = ("destination, message_id, payload, state, attempts, next_attempt_at, last_error, "
            "created_at, updated_at")


@dataclass
class CopyReport:
    """Rows read from the source and written to the target, by state."""

    read: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    already_there: int = 0
    #: rows that were leased in the source (their daemons are stopped): copied as queued
    requeued_leases: int = 0
    dedup_keys: int = 0

    def __str__(self) -> str:
        states = sorted(set(self.read) | set(self.written))
        parts = [f"{s}: {self.written.get(s, 0)} of {self.read.get(s, 0)}" for s in states]
        return (f"copied {sum(self.written.values())} rows ({', '.join(parts) or 'none'}); "
                f"{self.requeued_leases} leased rows queued again; "
                f"{self.already_there} already in the target; {self.dedup_keys} dedup keys")


def _is_postgres(outbox: Outbox) -> bool:
    return outbox.url.startswith(("postgresql://", "postgres://"))


def _pages(source: Outbox, states: tuple[str, ...]) -> Iterator[list[tuple[Any, ...]]]:
    """The source's rows in `states`, in id order, a page at a time (one short read
    transaction per page, so a big outbox is never held in memory)."""
    last = -1
    marks = ", ".join("?" * len(states))
    while True:
        with source.transaction() as db:  # type: ignore[attr-defined]
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
                now: float | None = None) -> CopyReport:
    """Copy rows from `source` into `target`, keeping states, attempts, due times, errors and
    payloads. Leased rows arrive queued and due now (the daemons holding them are stopped);
    a (destination, message_id) already in the target is left as it is, so running the copy
    twice copies nothing twice. Dedup keys come along so the window still holds."""
    now = time.time() if now is None else now
    states = ("queued", "leased", "dead") + (("delivered",) if include_delivered else ())
    report = CopyReport()
    ph = "%s" if _is_postgres(target) else "?"
    payload_ph = f"{ph}::jsonb" if _is_postgres(target) else ph
    insert = (f"INSERT INTO outbox ({_COLUMNS}) VALUES "
              f"({ph}, {ph}, {payload_ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
              "ON CONFLICT (destination, message_id) DO NOTHING")
    for page in _pages(source, states):
        params = []
        for dest, mid, payload, state, attempts, due, error, created, updated in page:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            if state == "leased":
                state, due = "queued", now
                report.requeued_leases += 1
            report.read[state] = report.read.get(state, 0) + 1
            params.append((dest, mid, text, state, attempts, due, error, created, updated))
        by_state: dict[str, list[tuple[Any, ...]]] = {}
        for row in params:
            by_state.setdefault(row[3], []).append(row)
        with target.transaction() as db:  # type: ignore[attr-defined]
            for state, rows in sorted(by_state.items()):
                cursor = db.conn.cursor()
                cursor.executemany(insert, rows)
                written = max(cursor.rowcount, 0)
                report.written[state] = report.written.get(state, 0) + written
                report.already_there += len(rows) - written
    report.dedup_keys = _copy_dedup(source, target, ph)
    if _is_postgres(target):
        destinations = {d for d, *_ in _queued_destinations(target)}
        with target.transaction() as db:  # type: ignore[attr-defined]
            for destination in sorted(destinations):
                db.conn.execute("SELECT pg_notify('crossdock_outbox', %s)", [destination])
    return report


def _queued_destinations(outbox: Outbox) -> list[tuple[str]]:
    with outbox.transaction() as db:  # type: ignore[attr-defined]
        return list(db.execute(
            "SELECT DISTINCT destination FROM outbox WHERE state = 'queued'", []).fetchall())


def _has_table(outbox: Outbox, name: str) -> bool:
    with outbox.transaction() as db:  # type: ignore[attr-defined]
        if _is_postgres(outbox):
            row = db.execute("SELECT to_regclass(?) IS NOT NULL", [name]).fetchone()
            return bool(row[0])
        return bool(db[name].exists())


def _copy_dedup(source: Outbox, target: Outbox, ph: str) -> int:
    if not _has_table(source, "dedup_keys"):
        return 0
    if not _has_table(target, "dedup_keys"):
        db = getattr(target, "db", None)
        if db is None:
            return 0
        from crossdock.dedup import Dedup

        Dedup.migrate(db)
    with source.transaction() as db:  # type: ignore[attr-defined]
        keys = db.execute("SELECT key, seen_at FROM dedup_keys", []).fetchall()
    copied = 0
    if keys:
        with target.transaction() as db:  # type: ignore[attr-defined]
            cursor = db.conn.cursor()
            cursor.executemany(
                f"INSERT INTO dedup_keys (key, seen_at) VALUES ({ph}, {ph}) "
                "ON CONFLICT (key) DO NOTHING", [tuple(k) for k in keys])
            copied = max(cursor.rowcount, 0)
    return copied


def upgrade_outbox(url: str, profiles: Any = None) -> list[str]:
    """Open the outbox at `url`, applying its migrations (and, on SQLite, those of the
    profile store and dedup window living in the same file); returns the names applied."""
    outbox = open_outbox(url)
    try:
        applied = list(getattr(outbox, "migrated", []))
        db = getattr(outbox, "db", None)
        if db is not None and hasattr(db, "conn"):
            from crossdock.dedup import Dedup
            from crossdock.profiles import ProfileStore

            applied += ProfileStore(profiles).migrate(db)
            applied += Dedup.migrate(db)
        return applied
    finally:
        outbox.close()


@click.group("db")
def db_group() -> None:
    """Outbox schema upgrades, and moving an outbox from one database to another."""


@db_group.command("upgrade")
@click.option("-c", "--config", "config_path", default="crossdock.yaml",
              envvar="CROSSDOCK_CONFIG", show_default=True, help="Path of crossdock.yaml.")
@click.option("--url", help="Upgrade this outbox URL instead of the configured one.")
def upgrade_command(config_path: str, url: str | None) -> None:
    """Create or upgrade the outbox schema (SQLite or PostgreSQL). Never drops queued rows;
    safe to run while daemons are running, and by many at once."""
    profiles = None
    if url is None:
        from crossdock.cli import load_or_exit

        loaded = load_or_exit(config_path)
        url, profiles = loaded.outbox_url, loaded.config.profiles
    try:
        applied = upgrade_outbox(url, profiles)
    except CrossdockError as exc:
        raise click.ClickException(str(exc)) from exc
    from crossdock.outbox.postgres import redact

    shown = redact(url)
    if applied:
        click.echo(f"{shown}: applied {len(applied)} migrations: {', '.join(applied)}")
    else:
        click.echo(f"{shown}: already up to date")


@db_group.command("copy")
@click.option("--from", "source_url", required=True,
              help="Outbox to copy from, e.g. sqlite:///crossdock.db")
@click.option("--to", "target_url", required=True,
              help="Outbox to copy into, e.g. postgresql://crossdock@db/crossdock")
@click.option("--include-delivered", is_flag=True,
              help="Also copy delivered rows (history); by default only rows still to send "
                   "and dead letters.")
def copy_command(source_url: str, target_url: str, include_delivered: bool) -> None:
    """Copy queued, retrying and dead rows (and the dedup window) between outboxes.

    Stop every daemon using the source first: rows they hold leased arrive queued. Rows
    already in the target are skipped, so the copy can be run again after an interruption."""
    if source_url == target_url:
        raise click.BadParameter("--from and --to are the same outbox", param_hint="--to")
    try:
        source = open_outbox(source_url)
        try:
            target = open_outbox(target_url)
            try:
                report = copy_outbox(source, target, include_delivered=include_delivered)
            finally:
                target.close()
        finally:
            source.close()
    except CrossdockError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(report))
