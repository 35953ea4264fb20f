"""One person as an operator looks them up and erases them: what `crossdock profiles show` and
`crossdock profiles delete` do, and the console's Profiles page, through the same two
functions so that the two never disagree.

    with pipeline.outbox.transaction() as tx:
        person = look_up(pipeline.profiles, shared_sql(tx), "ann@example.com", by="email")
    erased = erase(pipeline, person["id"])        # its own transaction

`look_up` is the profile store's `show` (identities, attributes with their types, consent,
sessions, merges, attribute problems) and the audiences the person is in. `erase` removes the
person and the profiles merged into them, forgets their kept messages, takes them out of every
audience (exit events first) and routes the `profile_deleted` system event, all in one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from crossdock.audiences import membership
from crossdock.audiences.sync import erased_exits
from crossdock.models import format_time
from crossdock.outbox.base import shared_sql
from crossdock.pipeline import Pipeline
from crossdock.profiles.attributes import LOOKUP_KINDS
from crossdock.profiles.store import Deleted, ProfileStore

__all__ = ["LOOKUP_KINDS", "Erased", "erase", "erased_person_keys", "look_up"]


def look_up(store: ProfileStore, db: Database, ref: str,
            by: str | None = None) -> dict[str, Any] | None:
    """Everything about the person `ref` names (a profile id, userId, anonymousId or email;
    `by` one of LOOKUP_KINDS to look it up as that only), with `audiences`: [{"audience",
    "entered_at"}]. None: nobody. ValueError for an unknown `by` or an empty `ref`."""
    _check(ref, by)
    found = store.show(db, ref.strip(), by)
    if found is None:
        return None
    found["audiences"] = [{"audience": name, "entered_at": format_time(at)}
                          for name, at in membership.memberships_of(db, found["id"])]
    return found


def _check(ref: str, by: str | None) -> None:
    """ValueError naming the field for a lookup that can find nobody."""
    if by is not None and by not in LOOKUP_KINDS:
        raise ValueError(f"by: one of {', '.join(LOOKUP_KINDS)}, got {by!r}")
    if not ref.strip():
        raise ValueError(f"ref: a {by or 'profile id, userId, anonymousId or email'} to look "
                         "up, got nothing")


def erased_person_keys(deleted: Deleted) -> list[str]:
    """The person keys (crossdock.pipeline.person_key) an erased person's messages were
    kept under: their profiles, and their userIds and anonymousIds."""
    keys = [f"p:{p}" for p in (deleted.profile_id, *deleted.merged)]
    keys += [f"u:{v}" for v in deleted.identities.get("userId", [])]
    keys += [f"a:{v}" for v in deleted.identities.get("anonymousId", [])]
    return keys


@dataclass
class Erased:
    """What `erase` did."""

    profile_id: str
    merged: list[str] = field(default_factory=list)
    #: audiences the person was taken out of
    audiences_left: int = 0
    #: outbox rows queued (audience exits, profile_deleted) for destinations
    rows: int = 0


def erase(pipeline: Pipeline[ProfileStore], ref: str, by: str | None = None) -> Erased | None:
    """Erase the person `ref` names (as `look_up` takes it) in one transaction: the profile,
    the profiles merged into it and everything they held, their kept messages, their audience
    memberships (the exit events routed first: a destination that erases the person on
    profile_deleted would refuse to untag them afterwards) and a `profile_deleted` event for
    destinations whose filter subscribes to it. None: nobody (nothing changed)."""
    store = pipeline.profiles
    if store is None:
        raise ValueError("erase: this pipeline has no profile store")
    _check(ref, by)
    with pipeline.outbox.transaction() as tx:
        db = shared_sql(tx)
        profile_id = store.find(db, ref.strip(), by)
        if profile_id is None:
            return None
        deleted = store.delete(db, profile_id)
        if deleted is None:
            return None
        # The messages kept for replay and backfill are theirs too: none outlives the
        # erasure (the profile_deleted event routed below is not kept).
        pipeline.outbox.forget_people(erased_person_keys(deleted))
        events = erased_exits(pipeline, db, [deleted.profile_id, *deleted.merged])
        exits = len(events)
        if deleted.event is not None:
            events.append(deleted.event)
        rows = 0
        if events and pipeline.loaded.destinations:
            rows = pipeline.accept_enriched(events)
    return Erased(deleted.profile_id, deleted.merged, exits, rows)
