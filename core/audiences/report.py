"""Audiences as an operator reads them: what `crossdock audiences list` and `preview` print
and the console's Audiences page shows, through the same functions so the two never disagree.
A sync is `crossdock.audiences.sync.sync` (with `select` for the audiences named).

    overview(pipeline)                 # every audience: condition, destinations, members, ...
    preview(pipeline, "high_value")    # who would enter and leave if it synced now

An unknown audience name is a KeyError naming it and the known ones (`select`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from crossdock.audiences import membership
from crossdock.audiences.membership import Change
from crossdock.audiences.spec import audiences_of
from crossdock.audiences.sync import plan_sync, select
from crossdock.outbox.base import shared_sql

if TYPE_CHECKING:
    from crossdock.pipeline import Pipeline
    from crossdock.profiles.store import ProfileStore


def overview(pipeline: Pipeline[ProfileStore],
             names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Each audience (the named ones; all when None): name, condition, destinations,
    schedule, sync_on_change, members now and last_sync_at (seconds since the epoch, None:
    never), in the config's order."""
    audiences = select(audiences_of(pipeline.loaded.config), names)
    with pipeline.outbox.transaction() as tx:
        db = shared_sql(tx)
        counts = membership.member_counts(db)
        last = {a.name: membership.last_sync(db, a.name) for a in audiences}
    return [{"name": a.name, "condition": a.config.condition,
             "destinations": a.config.destinations, "schedule": a.config.schedule,
             "sync_on_change": a.config.sync_on_change, "members": counts.get(a.name, 0),
             "last_sync_at": last[a.name]} for a in audiences]


def preview(pipeline: Pipeline[ProfileStore], name: str) -> dict[str, Any]:
    """Who would enter and leave audience `name` if it synced now; changes nothing:
    {"audience", "evaluated", "would_enter": [{"profileId", "userId", "email"}],
    "would_exit": [...]}."""
    audiences = select(audiences_of(pipeline.loaded.config), [name])
    with pipeline.outbox.transaction() as tx:
        db = shared_sql(tx)
        plan = plan_sync(db, audiences)
        people = {c.profile_id: _who(db, c) for c in plan.changes}
    sides = {kind: [{"profileId": c.profile_id, **people[c.profile_id]}
                    for c in plan.changes if c.kind == kind] for kind in ("entered", "exited")}
    return {"audience": name, "evaluated": plan.evaluated,
            "would_enter": sides["entered"], "would_exit": sides["exited"]}


def _who(db: Database, change: Change) -> dict[str, Any]:
    """The userId and email of the person a change is about (an exit: as they entered)."""
    if change.snapshot is not None:
        ids = change.snapshot.get("identities") or {}
        return {"userId": ids.get("userId"), "email": ids.get("email")}
    row = db.execute("SELECT user_id FROM profiles WHERE id = ?", [change.profile_id]).fetchone()
    email = db.execute("SELECT value FROM profile_identities WHERE profile_id = ? AND "
                       "type = 'email' ORDER BY last_seen DESC", [change.profile_id]).fetchone()
    return {"userId": row[0] if row else None, "email": email[0] if email else None}
