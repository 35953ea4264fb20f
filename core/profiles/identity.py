"""Identity resolution: which profile a message belongs to, and merging profiles.

Rules:
- an anonymousId alone resolves to the profile that owns it, or a new anonymous profile;
- a userId resolves to the profile that owns it. If none does, the message's anonymous profile
  is claimed (it becomes known), else a new known profile is made;
- when a known profile meets an anonymous profile of the same person (same anonymousId, an
  alias' previousId, or the same email), the anonymous one is merged into it: identities,
  attributes, sessions, consent, rejections. Merges are recorded in `profile_merges`;
- a user id, once assigned to a profile, never changes. A different userId on the same device
  (logout / reset) resolves to that other person's profile, which takes the device's anonymousId
  over from then on; two known profiles are never merged.

The rules are applied to an accept transaction's rows in memory by crossdock.profiles.batch;
this module holds the lookups and locks every other reader shares.

On PostgreSQL several daemons resolve messages at once, so every profile a transaction reads
to decide a merge, or writes, is held under a transaction-scoped advisory lock first
(`lock_profiles`, keys `profile:<id>`, after the identity keys: see crossdock.profiles.store).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlite_utils import Database

from crossdock.outbox.locks import is_postgres, lock_keys
from crossdock.profiles.sql import select_in, select_pairs

#: how often `lock_owners` re-reads the owners after locking before it gives up waiting for
#: them to settle (each round means another daemon merged one of them meanwhile)
MAX_LOCK_ROUNDS = 10


def new_profile_id() -> str:
    return f"p_{uuid.uuid4().hex}"


def owner(db: Database, kind: str, value: str) -> str | None:
    """The profile owning identity (kind, value), following merges."""
    row = db.execute(
        "SELECT profile_id FROM profile_identities WHERE type = ? AND value = ?", [kind, value]
    ).fetchone()
    return None if row is None else str(row[0])


def identity_lock_key(kind: str, value: str) -> str:
    return f"identity:{kind}:{value}"


def lock_profiles(db: Database, profile_ids: list[str] | set[str]) -> None:
    """Hold the advisory locks of these profiles until the transaction ends (PostgreSQL)."""
    lock_keys(db, [f"profile:{p}" for p in profile_ids])


def owners(db: Database, identities: list[tuple[str, str]]) -> set[str]:
    """The live profiles that own any of these (kind, value) identities; a userId counts
    also through `profiles.user_id`. Two queries, whatever the number of identities."""
    wanted = sorted(set(identities))
    if not wanted:
        return set()
    # The owner's row by its primary key, one probe per identity (see select_pairs).
    found = {str(pid) for (pid,) in select_pairs(
        db, "COALESCE((SELECT p.merged_into FROM profiles p WHERE p.id = t.profile_id), "
        "t.profile_id)", "profile_identities", ("type", "value"), wanted)}
    user_ids = sorted({value for kind, value in wanted if kind == "userId"})
    found |= {str(row[0]) for row in select_in(
        db, "SELECT id FROM profiles WHERE merged_into IS NULL AND user_id IN ({IN})",
        user_ids)}
    return found


def lock_owners(db: Database, identities: list[tuple[str, str]]) -> set[str]:
    """On PostgreSQL: lock the live owners of these identities, re-reading until the owners
    are the locked ones (another daemon may merge one away between the read and the lock).
    The caller holds the identities' own locks, so no new owner can appear meanwhile.
    Returns the locked profile ids (empty on SQLite, where the transaction excludes all)."""
    if not is_postgres(db):
        return set()
    locked: set[str] = set()
    for _ in range(MAX_LOCK_ROUNDS):
        found = owners(db, identities)
        new = found - locked
        if not new:
            break
        lock_profiles(db, new)
        locked |= new
    return locked


def live(db: Database, profile_id: str) -> str:
    """The profile `profile_id` was merged into, or itself."""
    row = db.execute("SELECT merged_into FROM profiles WHERE id = ?", [profile_id]).fetchone()
    return profile_id if row is None or row[0] is None else str(row[0])


def user_id_of(db: Database, profile_id: str) -> str | None:
    row = db.execute("SELECT user_id FROM profiles WHERE id = ?", [profile_id]).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def known_profile(db: Database, user_id: str) -> str | None:
    row = db.execute(
        "SELECT id FROM profiles WHERE user_id = ? AND merged_into IS NULL", [user_id]
    ).fetchone()
    return None if row is None else str(row[0])


def short(value_json: str) -> str:
    """A stored JSON value as a problem shows it: its repr, cut to 40 characters."""
    try:
        value: Any = json.loads(value_json)
    except ValueError:
        value = value_json
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
