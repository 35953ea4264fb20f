"""Snapshot exports: the profile store (or one audience's members) as rows of a file
destination, full or changes since the last run, by hand (`crossdock exports run NAME`) or on
a schedule (docs/exports.md, "Snapshot exports").

A run writes one outbox row per person for the export's file destination, so the files are
made, put and retried exactly as any file destination's are (crossdock.exports, the window
engine in crossdock.delivery.worker): a row is in one file only, a failed file is put again
under the same name with the same rows.

- **pages**: the run lists profiles in id order, `PAGE` at a time (`ProfileStore.page`), each
  page read and written in its own transaction, so a run over millions of profiles never
  holds the outbox's write lock (SQLite) for long. Every row of a run has the run's time as
  its acceptance time (one window), and the row's message id is `snapshot:<export>:<run>:
  <profile id>`.
- **held rows**: a run's rows are due never (`HELD`) until its files are cut, so the rows of
  a run whose daemon is killed never make a partial file; the export's next run finds the
  run stopped (`STALE_RUN_SECONDS` without a page) and takes them back.
- **files**: once the last page is written, the run's rows are cut into kept batches of the
  destination's `max_rows` (and `max_mb`), in id order: the worker leases a kept batch at
  once and whole, so the files of a run are written now, not when the run's window ends.
- **erasure**: `ProfileStore.delete` deletes the snapshot rows of the person that are not in
  a file yet, in its transaction; on PostgreSQL a page holds the advisory locks of its
  profiles (the ones erasure takes) from reading them to committing their rows, so a page
  read before an erasure commits before the erasure looks for rows to delete.
- **changes**: profiles updated (a message about them: attributes, consent, identities)
  after the last finished run's time, less `OVERLAP`: a profile changed by a transaction
  still open when the last run read may otherwise be missed; it is in two runs instead.
- **once per fleet**: a scheduled export is a fleet-once timer (crossdock.fleet), and a
  crontab schedule asks again, under the export's advisory lock, whether a run time has
  passed since the last run started, as scheduled audience syncs do.

Runs are recorded in `export_runs` (SQLite: migrations under their own `snapshots_` names,
created on first use; PostgreSQL: the outbox migration pg_012_export_runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from crossdock.audiences.membership import attributes_of, upgrade_audiences
from crossdock.config import ConfiguredDestination, LoadedConfig
from crossdock.destination import OutboxItem, PlannedSend
from crossdock.models import format_time
from crossdock.outbox.base import NewRow, shared_sql
from crossdock.outbox.locks import is_postgres, lock_keys
from crossdock.outbox.migrations import Migration, apply_migrations
from crossdock.profiles.consent import granted
from crossdock.profiles.identity import lock_profiles
from crossdock.profiles.store import SNAPSHOT_MESSAGE_PREFIX, ProfileRef, ProfileStore
from crossdock.sends import FilePut, Window
from crossdock.snapshots.spec import SnapshotConfig

log = logging.getLogger("crossdock.exports")

#: profiles read and written per transaction (on PostgreSQL each holds their advisory locks)
PAGE = 200
#: how far before the last run's time a `changes` run looks (see the module docstring)
OVERLAP = 60.0
#: how often a cron-scheduled export checks whether its time has come
CRON_TICK_SECONDS = 60.0
#: a run that committed no page for this long was killed (a page takes well under a second;
#: on PostgreSQL it may wait for the advisory locks of its profiles, never for minutes)
STALE_RUN_SECONDS = 600.0
#: when a run's rows are due until its files are cut: never (see `run_export`)
HELD = 1e18

SNAPSHOT_MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    SNAPSHOT_MIGRATIONS.append(fn)
    return fn


@_migration
def snapshots_m001_export_runs(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE export_runs (
            id INTEGER PRIMARY KEY,
            export TEXT NOT NULL,
            destination TEXT NOT NULL,
            mode TEXT NOT NULL,
            as_of REAL NOT NULL,
            since REAL,
            started_at REAL NOT NULL,
            finished_at REAL,
            state TEXT NOT NULL,
            rows INTEGER NOT NULL DEFAULT 0,
            files INTEGER NOT NULL DEFAULT 0,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX export_runs_export ON export_runs (export, id)")


@_migration
def snapshots_m002_heartbeat(db: Database) -> None:
    # When a run last committed a page: a run that stopped moving was killed.
    db.execute("ALTER TABLE export_runs ADD COLUMN heartbeat_at REAL")


_UPGRADED: weakref.WeakSet[Database] = weakref.WeakSet()


def upgrade_snapshots(db: Database) -> list[str]:
    """Create or upgrade `export_runs` in a SQLite outbox (once per connection); on
    PostgreSQL it is the outbox migration pg_012_export_runs, applied when the outbox opens."""
    if is_postgres(db) or db in _UPGRADED:
        return []
    applied = apply_migrations(db, SNAPSHOT_MIGRATIONS)
    _UPGRADED.add(db)
    return applied


@dataclass(frozen=True, slots=True)
class Run:
    """One run of an export, as `crossdock exports history` shows it."""

    id: int
    export: str
    destination: str
    mode: str
    as_of: float
    since: float | None
    started_at: float
    finished_at: float | None
    #: running | done | failed
    state: str
    rows: int
    files: int
    error: str | None


_RUN_COLUMNS = ("id, export, destination, mode, as_of, since, started_at, finished_at, "
                "state, rows, files, error")


def _run(row: Sequence[Any]) -> Run:
    return Run(int(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]),
               None if row[5] is None else float(row[5]), float(row[6]),
               None if row[7] is None else float(row[7]), str(row[8]), int(row[9]),
               int(row[10]), None if row[11] is None else str(row[11]))


def export_config(loaded: LoadedConfig, name: str) -> SnapshotConfig:
    """The export called `name`; KeyError naming the known ones."""
    exports = loaded.config.exports
    if name not in exports:
        raise KeyError(f"unknown export {name!r} (known: "
                       f"{', '.join(sorted(exports)) or 'none configured'})")
    return exports[name]


def message_prefix(export: str, run_id: int) -> str:
    return f"{SNAPSHOT_MESSAGE_PREFIX}{export}:{run_id}:"


def run_export(pipeline: Any, name: str, *, store: ProfileStore,
               due: Callable[[Any], bool] | None = None, page: int = PAGE,
               spec: SnapshotConfig | None = None) -> Run | None:
    """Run the export `name` now: its rows into its destination's outbox, cut into files.
    With `due(db)`, asked first under the export's lock: None when it says no. `spec`: the
    export as a timer was made with (a SIGHUP reload applies `exports:` at the restart);
    by default the pipeline's config says."""
    spec = export_config(pipeline.loaded, name) if spec is None else spec
    destination = pipeline.loaded.destination(spec.destination)
    outbox = pipeline.outbox
    with outbox.transaction() as tx:
        db = shared_sql(tx)
        upgrade_snapshots(db)
        lock_keys(db, [f"export:{name}"])
        if due is not None and not due(db):
            return None
        as_of = store.clock()
        _forget_stopped_runs(db, name, as_of)
        since = None
        if spec.mode == "changes":
            previous = _last(db, name, "done")
            since = None if previous is None else previous.as_of - OVERLAP
        run_id = int(db.execute(
            "INSERT INTO export_runs (export, destination, mode, as_of, since, started_at, "
            "heartbeat_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'running') RETURNING id",
            [name, spec.destination, spec.mode, as_of, since, as_of, as_of]).fetchone()[0])
    prefix = message_prefix(name, run_id)
    rows = files = 0
    try:
        after: str | None = None
        while True:
            with outbox.transaction() as tx:
                db = shared_sql(tx)
                refs, last = _page(db, store, spec, after, page, since)
                if last is None:
                    break
                new = _rows(db, store, spec, name, run_id, refs, as_of)
                outbox.enqueue(new, now=as_of)
                # Held until the run's files are cut: the window worker leases due rows, and
                # the rows of a run whose daemon is killed must never make a partial file.
                db.execute(f"UPDATE outbox SET next_attempt_at = ? WHERE {_uncut(prefix)}",
                           [HELD, spec.destination, prefix])
                rows += len(new)
                db.execute("UPDATE export_runs SET rows = ?, heartbeat_at = ? WHERE id = ?",
                           [rows, store.clock(), run_id])
            after = last
        with outbox.transaction() as tx:
            db = shared_sql(tx)
            files = _cut_files(db, spec.destination, prefix, destination.plugin.window(),
                               as_of)
            db.execute("UPDATE export_runs SET state = 'done', finished_at = ?, files = ? "
                       "WHERE id = ?", [store.clock(), files, run_id])
    except Exception as exc:
        # No part of a failed snapshot is written: the rows not in a file yet are taken back.
        with outbox.transaction() as tx:
            _take_back(shared_sql(tx), run_id, spec.destination, store.clock(),
                       f"{type(exc).__name__}: {exc}")
        raise
    if rows and pipeline.on_commit is not None:
        pipeline.on_commit({spec.destination})
    log.info("export %s: run %d wrote %d rows in %d files for %s", name, run_id, rows, files,
             spec.destination)
    with outbox.transaction() as tx:
        db = shared_sql(tx)
        found = db.execute(f"SELECT {_RUN_COLUMNS} FROM export_runs WHERE id = ?",
                           [run_id]).fetchone()
    return _run(found)


def _uncut(prefix: str) -> str:
    """Where the rows of a run (parameters: destination, `prefix`) not cut into a file yet."""
    return ("destination = ? AND state = 'queued' AND batch_key IS NULL AND "
            f"substr(message_id, 1, {len(prefix)}) = ?")


def _take_back(db: Database, run_id: int, destination: str, now: float, error: str) -> None:
    """Delete a run's rows not in a file yet and record it as failed with `error`."""
    (export,) = db.execute("SELECT export FROM export_runs WHERE id = ?", [run_id]).fetchone()
    prefix = message_prefix(str(export), run_id)
    db.execute(f"DELETE FROM outbox WHERE {_uncut(prefix)}", [destination, prefix])
    db.execute("UPDATE export_runs SET state = 'failed', finished_at = ?, error = ? "
               "WHERE id = ?", [now, error[:500], run_id])


def _forget_stopped_runs(db: Database, export: str, now: float) -> None:
    """Runs of `export` still `running` that committed nothing for `STALE_RUN_SECONDS`: their
    daemon was killed. Their rows (held, never in a file) are taken back. Called under the
    export's lock, before a new run starts."""
    for run_id, destination in db.execute(
            "SELECT id, destination FROM export_runs WHERE export = ? AND state = 'running' "
            "AND COALESCE(heartbeat_at, started_at) < ?",
            [export, now - STALE_RUN_SECONDS]).fetchall():
        log.warning("export %s: run %d stopped moving (its daemon was killed); its rows not "
                    "in a file are taken back", export, run_id)
        _take_back(db, int(run_id), str(destination), now,
                   f"interrupted: no page committed for {STALE_RUN_SECONDS:g} s "
                   "(its daemon stopped)")


def _page(db: Database, store: ProfileStore, spec: SnapshotConfig, after: str | None,
          limit: int, since: float | None) -> tuple[list[ProfileRef], str | None]:
    """The next page of the export's people and the id the page after it starts after
    (None: no more). On PostgreSQL their profiles are locked, then read again: one erased
    or merged away while this waited for its lock is left out."""
    refs = (store.page(db, after, limit, changed_since=since) if spec.audience is None
            else _members_page(db, spec.audience, after, limit, since))
    if not refs:
        return [], None
    last = refs[-1].id
    if is_postgres(db):
        lock_profiles(db, [r.id for r in refs])
        marks = ",".join("?" * len(refs))
        live = {str(pid) for (pid,) in db.execute(
            f"SELECT id FROM profiles WHERE id IN ({marks}) AND merged_into IS NULL",
            [r.id for r in refs]).fetchall()}
        refs = [r for r in refs if r.id in live]
    return refs, last


def _members_page(db: Database, audience: str, after: str | None, limit: int,
                  since: float | None) -> list[ProfileRef]:
    """Like `ProfileStore.page`, over one audience's members; with `since`, those updated
    or who entered after it."""
    upgrade_audiences(db)
    where = ["m.audience = ?", "p.merged_into IS NULL"]
    params: list[Any] = [audience]
    if after is not None:
        where.append("p.id > ?")
        params.append(after)
    if since is not None:
        where.append("(p.updated_at > ? OR m.entered_at > ?)")
        params += [since, since]
    rows = db.execute(
        "SELECT p.id, p.user_id, p.updated_at FROM audience_members m JOIN profiles p "
        f"ON p.id = m.profile_id WHERE {' AND '.join(where)} ORDER BY p.id LIMIT ?",
        [*params, limit]).fetchall()
    return [ProfileRef(str(pid), None if uid is None else str(uid), float(at))
            for pid, uid, at in rows]


def _rows(db: Database, store: ProfileStore, spec: SnapshotConfig, export: str, run_id: int,
          refs: list[ProfileRef], as_of: float) -> list[NewRow]:
    """One row per person: ids, the chosen attributes, consent and memberships."""
    if not refs:
        return []
    ids = [r.id for r in refs]
    marks = ",".join("?" * len(ids))
    attributes = attributes_of(db, ids)
    anonymous: dict[str, str] = {}
    for pid, value in db.execute(
            "SELECT profile_id, value FROM profile_identities WHERE type = 'anonymousId' AND "
            f"profile_id IN ({marks}) ORDER BY last_seen, value", ids).fetchall():
        anonymous[str(pid)] = str(value)  # the latest seen wins
    stated: dict[str, dict[str, bool]] = {pid: {} for pid in ids}
    if spec.consent:
        for pid, purpose, on in db.execute(
                "SELECT profile_id, purpose, granted FROM profile_consent WHERE profile_id "
                f"IN ({marks})", ids).fetchall():
            stated[str(pid)][str(purpose)] = bool(on)
    memberships: dict[str, dict[str, bool]] = {pid: {} for pid in ids}
    if spec.audiences:
        upgrade_audiences(db)
        for pid, audience in db.execute(
                "SELECT profile_id, audience FROM audience_members WHERE profile_id IN "
                f"({marks}) ORDER BY audience", ids).fetchall():
            memberships[str(pid)][str(audience)] = True
    defaults = store.config.consent_defaults
    prefix = message_prefix(export, run_id)
    out: list[NewRow] = []
    for ref in refs:
        attrs = attributes.get(ref.id, {})
        if spec.attributes is not None:
            attrs = {name: attrs[name] for name in spec.attributes if name in attrs}
        payload: dict[str, Any] = {
            "type": "profile", "messageId": prefix + ref.id, "export": export, "run": run_id,
            "snapshotAt": format_time(as_of), "profileId": ref.id, "userId": ref.user_id,
            "anonymousId": anonymous.get(ref.id), "updatedAt": format_time(ref.updated_at),
            "traits": dict(sorted(attrs.items())),
        }
        if spec.consent:
            yes = granted(stated[ref.id], defaults)
            payload["consent"] = {p: p in yes for p in sorted({*stated[ref.id], *defaults})}
        if spec.audiences:
            payload["audiences"] = memberships[ref.id]
        out.append(NewRow(spec.destination, prefix + ref.id, payload, f"p:{ref.id}"))
    return out


def _cut_files(db: Database, destination: str, prefix: str, window: Window | None,
               due: float) -> int:
    """Cut the run's rows not yet in a file into kept batches of `max_rows` rows (and
    `max_bytes` of payload), in id order, due at `due`; returns how many. A batch's key
    names its run and first row, so no two runs or files share one."""
    found = db.execute(
        f"SELECT id, LENGTH(payload) FROM outbox WHERE {_uncut(prefix)} ORDER BY id",
        [destination, prefix]).fetchall()
    max_rows = window.max_rows if window is not None else len(found) or 1
    max_bytes = window.max_bytes if window is not None else None
    batches: list[list[int]] = []
    size = 0
    for row_id, length in found:
        if (not batches or len(batches[-1]) >= max_rows
                or (max_bytes is not None and size + int(length) > max_bytes)):
            batches.append([])
            size = 0
        batches[-1].append(int(row_id))
        size += int(length)
    for batch in batches:
        for start in range(0, len(batch), 500):
            chunk = batch[start:start + 500]
            db.execute("UPDATE outbox SET batch_key = ?, next_attempt_at = ? WHERE id IN "
                       f"({','.join('?' * len(chunk))}) AND state = 'queued' AND "
                       "batch_key IS NULL", [f"{prefix}{batch[0]}", due, *chunk])
    return len(batches)


def _last(db: Database, export: str, state: str | None = None) -> Run | None:
    where = "export = ?" + (" AND state = ?" if state else "")
    row = db.execute(f"SELECT {_RUN_COLUMNS} FROM export_runs WHERE {where} "
                     "ORDER BY id DESC LIMIT 1", [export, *([state] if state else [])]
                     ).fetchone()
    return None if row is None else _run(row)


def history(db: Database, export: str | None = None, limit: int = 20) -> list[Run]:
    """The latest runs, newest first (of one export, or of all)."""
    upgrade_snapshots(db)
    where, params = ("WHERE export = ? ", [export]) if export else ("", [])
    return [_run(r) for r in db.execute(
        f"SELECT {_RUN_COLUMNS} FROM export_runs {where}ORDER BY id DESC LIMIT ?",
        [*params, limit]).fetchall()]


@dataclass(frozen=True, slots=True)
class LastFile:
    """The export destination's last file written (its rows still in the outbox)."""

    name: str
    rows: int
    bytes: int
    at: float


@dataclass(frozen=True, slots=True)
class ExportStatus:
    """What `crossdock exports list` shows for one export."""

    name: str
    config: SnapshotConfig
    last_run: Run | None
    #: rows of the export not in a delivered file yet (queued, retrying, leased)
    waiting: int
    dead: int
    last_file: LastFile | None
    #: seconds from the time of the newest run whose every row is in a file to now (how
    #: old the newest complete snapshot a consumer can read is); None: none yet
    lag: float | None


def status(db: Database, loaded: LoadedConfig, now: float | None = None) -> list[ExportStatus]:
    """Every configured export's last run, rows waiting, last file and lag."""
    upgrade_snapshots(db)
    now = time.time() if now is None else now
    out: list[ExportStatus] = []
    for name, spec in sorted(loaded.config.exports.items()):
        prefix = f"{SNAPSHOT_MESSAGE_PREFIX}{name}:"
        counts = {str(s): int(c) for s, c in db.execute(
            "SELECT state, COUNT(*) FROM outbox WHERE destination = ? AND "
            f"substr(message_id, 1, {len(prefix)}) = ? GROUP BY state",
            [spec.destination, prefix]).fetchall()}
        lag = None
        for run in history(db, name, 20):
            if run.state != "done":
                continue
            run_prefix = message_prefix(name, run.id)
            left = db.execute(
                "SELECT COUNT(*) FROM outbox WHERE destination = ? AND state <> 'delivered' "
                f"AND substr(message_id, 1, {len(run_prefix)}) = ?",
                [spec.destination, run_prefix]).fetchone()[0]
            if not left:
                lag = max(0.0, now - run.as_of)
                break
        try:
            destination: ConfiguredDestination | None = loaded.destination(spec.destination)
        except KeyError:
            destination = None
        out.append(ExportStatus(
            name, spec, _last(db, name),
            counts.get("queued", 0) + counts.get("leased", 0), counts.get("dead", 0),
            None if destination is None else last_file(db, destination, prefix), lag))
    return out


def last_file(db: Database, destination: ConfiguredDestination, prefix: str
              ) -> LastFile | None:
    """The last file of `prefix`'s rows put into `destination`: made again from its rows
    by the destination's plugin, which makes a file from its rows alone (docs/exports.md),
    so the name and the size are those of the file put. None once cleanup has forgotten
    its rows."""
    row = db.execute(
        "SELECT batch_key, MAX(updated_at) FROM outbox WHERE destination = ? AND "
        f"state = 'delivered' AND batch_key IS NOT NULL AND substr(message_id, 1, "
        f"{len(prefix)}) = ? GROUP BY batch_key ORDER BY MAX(updated_at) DESC, batch_key "
        "DESC LIMIT 1", [destination.name, prefix]).fetchone()
    if row is None:
        return None
    key, at = row
    items = [OutboxItem(int(i), str(m), json.loads(p), 1, float(c))
             for i, m, p, c in db.execute(
                 "SELECT id, message_id, payload, created_at FROM outbox WHERE destination = ? "
                 "AND batch_key = ? AND state = 'delivered' ORDER BY id",
                 [destination.name, key]).fetchall()]
    for planned in destination.plugin.build_requests(items):
        if isinstance(planned, PlannedSend) and isinstance(planned.send, FilePut):
            return LastFile(planned.send.name, len(planned.items), len(planned.send.content),
                            float(at))
    return None


def export_timer(pipeline: Any, name: str, store: ProfileStore,
                 clock: Callable[[], float] = time.time
                 ) -> tuple[float, Callable[[], Any]]:
    """(interval, coroutine function) for `Scheduler.add_timer`: an interval schedule runs
    on every tick; a crontab schedule ticks every minute and runs when a fire time has
    passed since the last run started (recorded, so a restart does not repeat it)."""
    spec = export_config(pipeline.loaded, name)
    schedule = spec.parsed_schedule
    assert schedule is not None
    if schedule.seconds is not None:
        async def every() -> Run | None:
            return await asyncio.to_thread(run_export, pipeline, name, store=store, spec=spec)

        return schedule.seconds, every
    started = clock()

    def due(db: Any) -> bool:
        upgrade_snapshots(db)
        last = _last(db, name)
        return schedule.next_after(started if last is None else last.started_at) <= clock()

    def due_now() -> bool:
        with pipeline.outbox.transaction() as tx:
            db = shared_sql(tx)
            return due(db)

    async def cron() -> Run | None:
        if await asyncio.to_thread(due_now):
            # Asked again under the export's lock: another daemon's run of this fire time
            # may have started since.
            return await asyncio.to_thread(run_export, pipeline, name, store=store, due=due,
                                           spec=spec)
        return None

    return CRON_TICK_SECONDS, cron


def add_export_timers(scheduler: Any, pipeline: Any, store: ProfileStore,
                      clock: Callable[[], float] = time.time) -> list[str]:
    """Add a fleet-once timer `export:<name>` per scheduled export; returns the names."""
    added: list[str] = []
    for name, spec in pipeline.loaded.config.exports.items():
        if spec.schedule is None:
            continue
        seconds, fn = export_timer(pipeline, name, store, clock)
        timer = f"export:{name}"
        scheduler.add_timer(timer, seconds, fn, fleet_once=True)
        added.append(timer)
    return added
