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

On PostgreSQL several daemons resolve messages at once, so every profile a transaction reads
to decide a merge, or writes, is held under a transaction-scoped advisory lock first
(`lock_profiles`, keys `profile:<id>`, after the identity keys: see crossdock.profiles.store).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlite_utils import Database

from crossdock.config import AttributeRulesConfig
from crossdock.outbox.locks import is_postgres, lock_keys
from crossdock.profiles.attributes import Problem

#: how often `lock_owners` re-reads the owners after locking before it gives up waiting for
#: them to settle (each round means another daemon merged one of them meanwhile)
MAX_LOCK_ROUNDS = 10

ATTRIBUTE_TABLES = ("profile_system_attributes", "profile_custom_attributes")


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
    also through `profiles.user_id`."""
    found: set[str] = set()
    for kind, value in identities:
        profile_id = owner(db, kind, value)
        if profile_id is not None:
            found.add(live(db, profile_id))
        if kind == "userId":
            known = known_profile(db, value)
            if known is not None:
                found.add(known)
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


def create_profile(db: Database, now: float, user_id: str | None = None) -> str:
    profile_id = new_profile_id()
    db.execute(
        "INSERT INTO profiles (id, user_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
        [profile_id, user_id, now, now],
    )
    if user_id is not None:
        link(db, profile_id, "userId", user_id, now)
    return profile_id


def link(db: Database, profile_id: str, kind: str, value: str, now: float) -> None:
    """Give identity (kind, value) to a profile (taking it from another owner if needed)."""
    db.execute(
        "INSERT INTO profile_identities (type, value, profile_id, first_seen, last_seen) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (type, value) DO UPDATE SET "
        "profile_id = excluded.profile_id, last_seen = excluded.last_seen",
        [kind, value, profile_id, now, now],
    )


def resolve(
    db: Database,
    user_id: str | None,
    anonymous_id: str | None,
    now: float,
    rules: AttributeRulesConfig,
) -> tuple[str, list[Problem]]:
    """The profile of a message with these ids (created or merged as needed), and any
    problems the merges found (attributes whose types disagreed)."""
    problems: list[Problem] = []
    device = owner(db, "anonymousId", anonymous_id) if anonymous_id else None
    if user_id is None:
        if device is None:
            assert anonymous_id is not None  # messages carry at least one id
            device = create_profile(db, now)
        if anonymous_id is not None:
            link(db, device, "anonymousId", anonymous_id, now)
        return device, problems
    known = known_profile(db, user_id)
    if known is None:
        if device is not None and user_id_of(db, device) is None:
            db.execute("UPDATE profiles SET user_id = ?, updated_at = ? WHERE id = ?",
                       [user_id, now, device])
            link(db, device, "userId", user_id, now)
            known = device
        else:
            known = create_profile(db, now, user_id)
    elif device is not None and device != known and user_id_of(db, device) is None:
        problems += merge(db, device, known,
                          f"anonymousId {anonymous_id} identified as userId {user_id}", now, rules)
    if anonymous_id is not None:
        link(db, known, "anonymousId", anonymous_id, now)
    return known, problems


def alias(
    db: Database, previous_id: str, user_id: str, now: float, rules: AttributeRulesConfig
) -> tuple[str, list[Problem]]:
    """An alias call: the profile known by `previous_id` (an anonymousId, or an earlier user
    id) joins `user_id`'s profile, if it is anonymous."""
    known, problems = resolve(db, user_id, None, now, rules)
    previous = owner(db, "anonymousId", previous_id) or known_profile(db, previous_id)
    if previous is not None and previous != known:
        if user_id_of(db, previous) is None:
            problems += merge(db, previous, known,
                              f"alias of {previous_id} to userId {user_id}", now, rules)
        else:
            problems.append(Problem(
                "previousId", "alias",
                f"{previous_id} belongs to another known person; a user id never changes, "
                "so the profiles were not merged",
            ))
    return known, problems


def link_email(
    db: Database, profile_id: str, email: str, now: float, rules: AttributeRulesConfig
) -> tuple[list[Problem], bool]:
    """Record an email identity; a known profile absorbs an anonymous profile with the same
    email. An email already owned by a known profile stays with it. Returns the merge's
    problems and whether a profile was merged (always into `profile_id`)."""
    current = owner(db, "email", email)
    if current is not None and current != profile_id and is_postgres(db):
        # Usually locked already (the message carried this email); when the email is the
        # profile's stored one, its owner is locked here, and read again once held.
        lock_owners(db, [("email", email)])
        current = owner(db, "email", email)
    if current is None or current == profile_id:
        link(db, profile_id, "email", email, now)
        return [], False
    mine_known = user_id_of(db, profile_id) is not None
    theirs_known = user_id_of(db, current) is not None
    if mine_known and not theirs_known:
        return merge(db, current, profile_id, f"same email {email}", now, rules), True
    if not mine_known and not theirs_known:
        # Two anonymous visits with one email are one person already.
        return merge(db, current, profile_id, f"same email {email}", now, rules), True
    return [], False


def merge(
    db: Database, source: str, target: str, reason: str, now: float, rules: AttributeRulesConfig
) -> list[Problem]:
    """Move everything of profile `source` into `target` and record the merge. Where both have
    an attribute of the same type, the later value wins; of different types, the target's."""
    problems: list[Problem] = []
    db.execute("UPDATE profile_identities SET profile_id = ? WHERE profile_id = ?",
               [target, source])
    db.execute("UPDATE profile_sessions SET profile_id = ? WHERE profile_id = ?",
               [target, source])
    db.execute("UPDATE profile_rejections SET profile_id = ? WHERE profile_id = ?",
               [target, source])
    for table in ATTRIBUTE_TABLES:
        problems += _merge_attributes(db, table, source, target, rules)
    db.execute(
        """
        INSERT INTO profile_consent (profile_id, purpose, granted, updated_at)
        SELECT ?, purpose, granted, updated_at FROM profile_consent WHERE profile_id = ?
        ON CONFLICT (profile_id, purpose) DO UPDATE SET
            granted = excluded.granted, updated_at = excluded.updated_at
        WHERE excluded.updated_at > profile_consent.updated_at
        """,
        [target, source],
    )
    db.execute("DELETE FROM profile_consent WHERE profile_id = ?", [source])
    count = db.execute("SELECT message_count, created_at FROM profiles WHERE id = ?",
                       [source]).fetchone()
    created = count[1] if count else now
    # CASE, not MIN(a, b): the two-argument MIN is SQLite's alone.
    db.execute(
        "UPDATE profiles SET message_count = message_count + ?, created_at = CASE WHEN "
        "created_at < ? THEN created_at ELSE ? END, updated_at = ? WHERE id = ?",
        [count[0] if count else 0, created, created, now, target],
    )
    # Earlier merges into the source now point at the target, so lookups take one step.
    db.execute("UPDATE profiles SET merged_into = ? WHERE merged_into = ? OR id = ?",
               [target, source, source])
    db.execute(
        "INSERT INTO profile_merges (from_profile, into_profile, reason, merged_at) "
        "VALUES (?, ?, ?, ?)",
        [source, target, reason, now],
    )
    return problems


def _merge_attributes(
    db: Database, table: str, source: str, target: str, rules: AttributeRulesConfig
) -> list[Problem]:
    problems: list[Problem] = []
    theirs = {
        row[0]: (row[1], row[2], row[3])
        for row in db.execute(
            f"SELECT name, type, value, updated_at FROM {table} WHERE profile_id = ?", [source]
        ).fetchall()
    }
    mine = {
        row[0]: (row[1], row[2], row[3])
        for row in db.execute(
            f"SELECT name, type, value, updated_at FROM {table} WHERE profile_id = ?", [target]
        ).fetchall()
    }
    per_type: dict[str, int] = {}
    for kind, _, _ in mine.values():
        per_type[kind] = per_type.get(kind, 0) + 1
    custom = table == "profile_custom_attributes"
    for name, (kind, value, updated_at) in theirs.items():
        current = mine.get(name)
        if current is not None:
            if current[0] != kind:
                problems.append(Problem(
                    name, "type",
                    f"merge: type is fixed as {current[0]}; the merged profile's {kind} value "
                    f"{_short(value)} was dropped",
                ))
                continue
            if current[2] >= updated_at:
                continue
        elif custom and per_type.get(kind, 0) >= rules.max_custom_per_type:
            problems.append(Problem(
                name, "type_limit",
                f"merge: at most {rules.max_custom_per_type} custom {kind} attributes; dropped",
            ))
            continue
        else:
            per_type[kind] = per_type.get(kind, 0) + 1
        db.execute(
            f"INSERT INTO {table} (profile_id, name, type, value, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (profile_id, name) DO UPDATE SET "
            "type = excluded.type, value = excluded.value, updated_at = excluded.updated_at",
            [target, name, kind, value, updated_at],
        )
    db.execute(f"DELETE FROM {table} WHERE profile_id = ?", [source])
    return problems


def _short(value_json: str) -> str:
    try:
        value: Any = json.loads(value_json)
    except ValueError:
        value = value_json
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
