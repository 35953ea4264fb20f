"""Who is in each audience, and what has to change: table `audience_members`, in the outbox's
own database next to the profile tables (SQLite: migrations under their own `audiences_`
names, created on first use; PostgreSQL: the outbox migration `pg_005_audiences`). The SQL
runs on both engines, written the profile store's way (docs/postgresql.md, "For developers").

`plan(db, audiences, profile_ids)` only reads: for each audience, the people who enter (the
condition now holds, no row) and who exit (a row, the condition no longer holds, or the
profile was deleted). `apply(db, change, now)` writes one change. A member row keeps a
snapshot of the attributes and identities the person entered with, so an exit removes at the
destination exactly what the entry added, even after the profile changed or was erased.

Profiles merged into another keep their rows under the surviving profile (`rekeys`); a
duplicate row left by a merge is dropped without an event (the survivor's row stands for
the person).

`lock_audiences(db, names, shared=...)`: on PostgreSQL, the transaction-scoped advisory lock
of each audience, shared by on-change updates and exclusive for a full sync (see
crossdock.audiences.sync for the order they are taken in); a no-op on SQLite.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlite_utils import Database

from crossdock.audiences.spec import Audience
from crossdock.outbox.copy import StoreTables
from crossdock.outbox.locks import is_postgres, lock_id
from crossdock.outbox.migrations import Migration, apply_migrations

AUDIENCE_MIGRATIONS: list[Migration] = []
_CHUNK = 500

Kind = Literal["entered", "exited"]


def _migration(fn: Migration) -> Migration:
    AUDIENCE_MIGRATIONS.append(fn)
    return fn


_UPGRADED: weakref.WeakSet[Database] = weakref.WeakSet()


def upgrade_audiences(db: Database) -> list[str]:
    """Create or upgrade the audience tables in a SQLite outbox (once per connection); returns
    the migrations applied now. On PostgreSQL they are the outbox migration pg_005_audiences,
    applied when the outbox opens and by `crossdock db upgrade`: nothing to do here."""
    if is_postgres(db) or db in _UPGRADED:
        return []
    applied = apply_migrations(db, AUDIENCE_MIGRATIONS)
    _UPGRADED.add(db)
    return applied


#: The audiences' tables, copied whole by `crossdock db copy` (pg_005_audiences on PostgreSQL).
#: audience_changes' ids name the audience events' messageIds: a new change after a copy must
#: not reuse one, nor may a target's own changes mix with the source's.
AUDIENCE_TABLES = StoreTables(
    ("audience_members", "audience_changes", "audience_syncs"),
    migrate=upgrade_audiences,
    numbered=("audience_changes",),
    own_rows=(("audience_changes", "id"),),
)


def audience_lock_key(name: str) -> str:
    return f"audience:{name}"


def lock_audiences(db: Database, names: Iterable[str], *, shared: bool) -> None:
    """On PostgreSQL, take the transaction-scoped advisory locks of these audiences in
    lock-number order: shared (on-change updates: any number at once, each also holding its
    person's profile locks) or exclusive (a full sync: alone). Released at commit or
    rollback. A no-op on SQLite, whose transactions already exclude each other."""
    if not is_postgres(db):
        return
    ids = sorted({lock_id(audience_lock_key(n)) for n in names})
    if ids:
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        # unnest() yields the array in order, so the locks are taken in that order.
        db.execute(f"SELECT {fn}(k) FROM unnest(?::bigint[]) AS k", [ids])


@_migration
def audiences_m001_initial(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE audience_members (
            audience TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            entered_at REAL NOT NULL,
            snapshot TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (audience, profile_id)
        )
        """
    )
    db.execute("CREATE INDEX audience_members_profile ON audience_members (profile_id)")
    # Every change, in order: its id makes each audience event's messageId unique and stable.
    db.execute(
        """
        CREATE TABLE audience_changes (
            id INTEGER PRIMARY KEY,
            audience TEXT NOT NULL,
            profile_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE audience_syncs (
            audience TEXT PRIMARY KEY,
            last_sync_at REAL NOT NULL,
            entered INTEGER NOT NULL,
            exited INTEGER NOT NULL
        )
        """
    )


@dataclass(frozen=True)
class Change:
    """One person entering or leaving one audience. `row_profile_id` is the member row an
    exit removes (another id than `profile_id` after a merge); `snapshot` what it held."""

    audience: str
    profile_id: str
    kind: Kind
    row_profile_id: str | None = None
    snapshot: dict[str, Any] | None = None
    #: the profile no longer exists (erased): the exit is built from the snapshot alone
    deleted: bool = False


@dataclass
class Plan:
    """What a sync would do."""

    changes: list[Change] = field(default_factory=list)
    #: (audience, row profile id, surviving profile id): rows to move after a merge
    rekeys: list[tuple[str, str, str]] = field(default_factory=list)
    #: (audience, row profile id): duplicate rows a merge left behind
    drops: list[tuple[str, str]] = field(default_factory=list)
    #: profiles evaluated
    evaluated: int = 0

    def count(self, audience: str, kind: Kind) -> int:
        return sum(1 for c in self.changes if c.audience == audience and c.kind == kind)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def attributes_of(db: Database, profile_ids: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """profile id -> attributes (custom, overlaid by system: as the route step sees them),
    for the given live profiles, or for every live profile."""
    out: dict[str, dict[str, Any]] = {}
    if profile_ids is None:
        for (pid,) in db.execute("SELECT id FROM profiles WHERE merged_into IS NULL"):
            out[pid] = {}
        batches: Iterable[Sequence[str] | None] = [None]
    else:
        for pid in profile_ids:
            out[pid] = {}
        batches = list(_chunks(list(profile_ids)))
    for table in ("profile_custom_attributes", "profile_system_attributes"):
        for batch in batches:
            if batch is None:
                rows = db.execute(f"SELECT profile_id, name, value FROM {table}")
            else:
                marks = ",".join("?" * len(batch))
                rows = db.execute(f"SELECT profile_id, name, value FROM {table} "
                                  f"WHERE profile_id IN ({marks})", list(batch))
            for pid, name, value in rows:
                attrs = out.get(pid)
                if attrs is not None:
                    attrs[name] = json.loads(value)
    return out


def _rows(db: Database, names: list[str], profile_ids: Sequence[str] | None
          ) -> list[tuple[str, str, str]]:
    """(audience, profile_id, snapshot) member rows of these audiences: all of them, or those
    of the given profiles and of the profiles merged into them."""
    marks = ",".join("?" * len(names))
    if profile_ids is None:
        return [tuple(r) for r in db.execute(  # type: ignore[misc]
            f"SELECT audience, profile_id, snapshot FROM audience_members "
            f"WHERE audience IN ({marks})", names).fetchall()]
    rows: list[tuple[str, str, str]] = []
    for batch in _chunks(list(profile_ids)):
        ids = ",".join("?" * len(batch))
        rows += [tuple(r) for r in db.execute(  # type: ignore[misc]
            f"SELECT audience, profile_id, snapshot FROM audience_members "
            f"WHERE audience IN ({marks}) AND (profile_id IN ({ids}) OR profile_id IN "
            f"(SELECT id FROM profiles WHERE merged_into IN ({ids})))",
            [*names, *batch, *batch]).fetchall()]
    return rows


def _live_of(db: Database, row_ids: set[str]) -> dict[str, str | None]:
    """Each member row's profile as it is now: itself, the profile it was merged into, or
    None when it was erased."""
    live: dict[str, str | None] = dict.fromkeys(row_ids)
    ids = sorted(row_ids)
    for batch in _chunks(ids):
        marks = ",".join("?" * len(batch))
        for pid, merged_into in db.execute(
                f"SELECT id, merged_into FROM profiles WHERE id IN ({marks})", list(batch)):
            live[pid] = merged_into or pid
    return live


def plan(db: Database, audiences: Sequence[Audience],
         profile_ids: Sequence[str] | None = None) -> Plan:
    """The changes that bring the member rows of `audiences` in line with the profiles'
    attributes now: for the given (live) profiles, or, with None, for everyone. Reads only."""
    result = Plan()
    if not audiences:
        return result
    upgrade_audiences(db)
    attributes = attributes_of(db, profile_ids)
    result.evaluated = len(attributes)
    rows = _rows(db, [a.name for a in audiences], profile_ids)
    live = _live_of(db, {pid for _, pid, _ in rows})
    for audience in audiences:
        audience.type_errors = 0
        # live profile id -> (its member row's profile id, snapshot)
        members: dict[str, tuple[str, str]] = {}
        for name, pid, snapshot in rows:
            if name != audience.name:
                continue
            now_id = live.get(pid)
            if now_id is None:
                result.changes.append(Change(audience.name, pid, "exited", pid,
                                             json.loads(snapshot), deleted=True))
            elif now_id in members:
                # Two rows for one person after a merge: the survivor's own row stands.
                if pid == now_id:
                    result.drops.append((audience.name, members[now_id][0]))
                    members[now_id] = (pid, snapshot)
                else:
                    result.drops.append((audience.name, pid))
            else:
                members[now_id] = (pid, snapshot)
        for now_id, (pid, _) in members.items():
            if pid != now_id:
                result.rekeys.append((audience.name, pid, now_id))
        for pid, attrs in attributes.items():
            member = members.get(pid)
            inside = audience.matches(attrs)
            if inside and member is None:
                result.changes.append(Change(audience.name, pid, "entered"))
            elif not inside and member is not None:
                result.changes.append(Change(audience.name, pid, "exited", pid,
                                             json.loads(member[1])))
    return result


def apply_moves(db: Database, result: Plan) -> None:
    """Move member rows of merged profiles to their survivor and drop merge duplicates."""
    for audience, old in result.drops:
        db.execute("DELETE FROM audience_members WHERE audience = ? AND profile_id = ?",
                   [audience, old])
    for audience, old, new in result.rekeys:
        db.execute("UPDATE audience_members SET profile_id = ? WHERE audience = ? AND "
                   "profile_id = ?", [new, audience, old])


def apply(db: Database, change: Change, now: float, snapshot: dict[str, Any] | None = None
          ) -> int:
    """Write one change (after `apply_moves`); returns its id in audience_changes."""
    if change.kind == "entered":
        db.execute(
            "INSERT INTO audience_members (audience, profile_id, entered_at, snapshot) "
            "VALUES (?, ?, ?, ?)",
            [change.audience, change.profile_id, now, json.dumps(snapshot or {})],
        )
    else:
        db.execute("DELETE FROM audience_members WHERE audience = ? AND profile_id = ?",
                   [change.audience, change.profile_id])
    # RETURNING rather than lastrowid: both engines have it.
    row = db.execute(
        "INSERT INTO audience_changes (audience, profile_id, kind, at) VALUES (?, ?, ?, ?) "
        "RETURNING id",
        [change.audience, change.profile_id, change.kind, now],
    ).fetchone()
    return int(row[0])


def evaluate(db: Database, audience: Audience, profile_id: str) -> Change | None:
    """Whether `profile_id` (a live profile) enters or exits `audience` now; reads only."""
    changes = plan(db, [audience], [profile_id]).changes
    return changes[0] if changes else None


def member_counts(db: Database) -> dict[str, int]:
    """audience name -> members now."""
    upgrade_audiences(db)
    return {str(name): int(count) for name, count in db.execute(
        "SELECT audience, COUNT(*) FROM audience_members GROUP BY audience")}


def memberships_of(db: Database, profile_id: str) -> list[tuple[str, float]]:
    """(audience, entered at) of every audience the profile is a member of, by name."""
    upgrade_audiences(db)
    return [(str(name), float(at)) for name, at in db.execute(
        "SELECT audience, entered_at FROM audience_members WHERE profile_id = ? "
        "ORDER BY audience", [profile_id]).fetchall()]


def record_sync(db: Database, audience: str, now: float, entered: int, exited: int) -> None:
    db.execute(
        "INSERT INTO audience_syncs (audience, last_sync_at, entered, exited) VALUES "
        "(?, ?, ?, ?) ON CONFLICT (audience) DO UPDATE SET last_sync_at = excluded.last_sync_at,"
        " entered = excluded.entered, exited = excluded.exited",
        [audience, now, entered, exited],
    )


def last_sync(db: Database, audience: str) -> float | None:
    upgrade_audiences(db)
    row = db.execute("SELECT last_sync_at FROM audience_syncs WHERE audience = ?",
                     [audience]).fetchone()
    return None if row is None else float(row[0])
