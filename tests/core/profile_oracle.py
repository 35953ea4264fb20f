"""The per-message profile path as it was before issue 20 (crossdock at main, 2026-12-07),
kept only as the oracle of tests/core/test_profiles_batch_property.py: about 17 SQL
statements per message, each message resolved on its own inside a savepoint. Production
resolves a batch set-wise (crossdock.profiles.batch); the property test holds the two to the
same rows and the same routed messages. Do not use it for anything else."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlite_utils import Database

from crossdock.config import AttributeRulesConfig
from crossdock.dedup import message_key
from crossdock.errors import MessageError
from crossdock.models import AliasMessage, EnrichedMessage, Message
from crossdock.outbox.locks import is_postgres, lock_keys
from crossdock.profiles import identity
from crossdock.profiles.attributes import Problem, Stored, apply_rules, shown, split_traits
from crossdock.profiles.consent import consent_changes, consent_resets
from crossdock.profiles.identity import known_profile, lock_owners, owner, user_id_of
from crossdock.profiles.sessions import SESSION_START, Session, SessionEvent, _session, end
from crossdock.profiles.store import DEFINITIONS_LOCK, ProfileStore, message_traits

log = logging.getLogger("crossdock.profiles")
_TABLES = {False: "profile_system_attributes", True: "profile_custom_attributes"}
_PARTS = {False: "system", True: "custom"}
ATTRIBUTE_TABLES = ("profile_system_attributes", "profile_custom_attributes")
_COLUMNS = "id, session_id, profile_id, started_at, last_seen_at, ended_at, message_count"


def _many(db: Database, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if not is_postgres(db):
        db.conn.executemany(sql, rows)
        return
    for row in rows:
        db.execute(sql, list(row))


# -- crossdock.profiles.identity at main ----------------------------------------------------

def create_profile(db: Database, now: float, user_id: str | None = None) -> str:
    profile_id = identity.new_profile_id()
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


# -- crossdock.profiles.sessions.touch at main ----------------------------------------------

def touch(
    db: Database, profile_id: str, session_id: str, now: float, timeout: float
) -> tuple[float, list[SessionEvent]]:
    """Record a message of `session_id` at `now`; returns when the message's session started
    (destinations such as Amplitude name a session by its start) and the events it causes."""
    events: list[SessionEvent] = []
    # On PostgreSQL the row lock makes a concurrent sweep skip this session (SKIP LOCKED), and
    # a sweep that got there first has ended it: re-checked after the wait, it drops out.
    row = db.execute(
        f"SELECT {_COLUMNS} FROM profile_sessions WHERE session_id = ? AND ended_at IS NULL "
        "ORDER BY id DESC LIMIT 1" + (" FOR UPDATE" if is_postgres(db) else ""),
        [session_id],
    ).fetchone()
    if row is not None:
        current = _session(row)
        if now - current.last_seen_at < timeout and current.profile_id == profile_id:
            # CASE, not MAX(a, b): the two-argument MAX is SQLite's alone.
            db.execute(
                "UPDATE profile_sessions SET last_seen_at = CASE WHEN last_seen_at > ? "
                "THEN last_seen_at ELSE ? END, message_count = message_count + 1 WHERE id = ?",
                [now, now, current.id],
            )
            return current.started_at, events
        # Idle too long (the sweep has not run yet), or the device changed hands (logout):
        # the old session ends and this message opens a new one.
        events.append(end(db, current, now, timeout))
    new_id = db.execute(
        "INSERT INTO profile_sessions (session_id, profile_id, started_at, last_seen_at, "
        "message_count) VALUES (?, ?, ?, ?, 1) RETURNING id",
        [session_id, profile_id, now, now],
    ).fetchone()[0]
    started = Session(int(new_id), session_id, profile_id, now, now, None, 1)
    events.append(SessionEvent(SESSION_START, started, now))
    return now, events




# -- ProfileStore's per-message resolve at main ---------------------------------------------


class OracleBatch:
    """The pipeline's ProfileBatch over the old per-message calls (flush has nothing to do:
    every statement ran already)."""

    def __init__(self, store: OracleStore, db: Database, messages: list[Message]) -> None:
        self.store = store
        self.db = db
        if is_postgres(db):
            store.lock(db, messages)

    def seen(self, message_id: str) -> bool:
        return self.store.seen(self.db, message_id)

    def resolve(self, message: Message) -> list[EnrichedMessage]:
        db = self.db
        if is_postgres(db):
            self.store.lock(db, [message])
        db.execute("SAVEPOINT profile_resolve")
        try:
            result = self.store.resolve_one(db, message)
        except BaseException:
            db.execute("ROLLBACK TO profile_resolve")
            db.execute("RELEASE profile_resolve")
            raise
        db.execute("RELEASE profile_resolve")
        return result

    def flush(self) -> None:
        pass


class OracleStore(ProfileStore):
    """ProfileStore with main's per-message `resolve`."""

    def prepare(self, db: Database, messages: list[Message]) -> OracleBatch:  # type: ignore[override]
        self.migrate(db)
        return OracleBatch(self, db, messages)

    def resolve_one(self, db: Database, message: Message) -> list[EnrichedMessage]:
        now = self.clock()
        rules = self.config.attributes
        data = message.to_json()
        if isinstance(message, AliasMessage):
            if message.user_id is None:
                raise MessageError(["userId: is required for alias (the id previousId joins)"])
            profile_id, problems = alias(db, message.previous_id, message.user_id,
                                                  now, rules)
            if message.anonymous_id:
                link(db, profile_id, "anonymousId", message.anonymous_id, now)
        else:
            profile_id, problems = resolve(db, message.user_id, message.anonymous_id,
                                                    now, rules)
        system, custom = split_traits(message_traits(message))
        found, system_now = self._apply(db, profile_id, system, custom=False, now=now)
        problems += found
        found, custom_now = self._apply(db, profile_id, custom, custom=True, now=now)
        problems += found
        email = (system_now.get("email") if system_now is not None
                 else self._attribute(db, profile_id, "email"))
        merged = False
        if isinstance(email, str) and email:
            found, merged = link_email(db, profile_id, email.strip().lower(), now,
                                                rules)
            problems += found
            if merged:
                profile_id = self._live(db, profile_id)
        consent = consent_changes(message.context, system)
        for purpose in [p for p in consent if "\x00" in p]:
            # PostgreSQL text cannot hold NUL; no real purpose has one. Both engines alike.
            del consent[purpose]
            problems.append(Problem(shown(purpose[:60]), "consent",
                                    "a consent purpose must not contain NUL (\\u0000); "
                                    "ignored"))
        self._set_consent(db, profile_id, consent, now)
        resets = [p for p in consent_resets(system) if p not in consent]
        if resets:
            # An opt-in sent as null is forgotten: the channel's default answers again.
            db.execute(f"DELETE FROM profile_consent WHERE profile_id = ? AND purpose IN "
                       f"({','.join('?' * len(resets))})", [profile_id, *resets])
        events: list[SessionEvent] = []
        session_started: float | None = None
        if message.session_id:
            session_started, events = touch(db, profile_id, message.session_id, now,
                                            self.config.session_timeout)
        db.execute(
            "UPDATE profiles SET message_count = message_count + 1, updated_at = ? WHERE id = ?",
            [now, profile_id],
        )
        self._record_problems(db, profile_id, message.message_id, problems, now)
        self.dedup.remember(db, message_key(message.message_id), now)
        out = [self._system_event(db, event) for event in events]
        known: tuple[dict[str, Any], dict[str, Any]] | None = None
        if (not merged and system_now is not None and custom_now is not None
                and not is_postgres(db)):
            # Both attribute tables were just read and written here and nothing merged
            # since: enrich from that, not another read. SQLite's ORDER BY name (BINARY) is
            # Python's string order; PostgreSQL's collation may not be, so it reads.
            known = (dict(sorted(custom_now.items())), dict(sorted(system_now.items())))
        enriched = self.enrich(db, profile_id, data, known_attributes=known)
        enriched.session_started_at = session_started
        out.append(enriched)
        return out

    def _apply(self, db: Database, profile_id: str, values: dict[str, Any], *, custom: bool,
               now: float) -> tuple[list[Problem], dict[str, Any] | None]:
        """Apply the attribute rules and store the changes; returns the problems and the
        table's attributes of this profile afterwards, decoded as a read would give them
        (None when `values` is empty and nothing was read)."""
        if not values:
            return [], None
        table = _TABLES[custom]
        rules = self.config.attributes
        existing = {
            name: Stored(kind, json.loads(value))
            for name, kind, value in db.execute(
                f"SELECT name, type, value FROM {table} WHERE profile_id = ?", [profile_id]
            ).fetchall()
        }
        part = _PARTS[custom]
        # Only names the rules could store are looked up (PostgreSQL text cannot hold NUL).
        names = [n for n, v in values.items() if isinstance(n, str) and n and v is not None
                 and "\x00" not in n and len(n) <= rules.max_name_length]
        definitions = self._definitions(db, part, names)
        per_type: dict[str, int] = {}
        if any(n not in definitions for n in names):
            # A first datapoint defines the attribute for the account. On PostgreSQL one
            # transaction at a time does that (another daemon may be defining the same name
            # or the last one of a type), so read again under the lock. Rare: once a name.
            lock_keys(db, [DEFINITIONS_LOCK])
            if is_postgres(db):
                definitions = self._definitions(db, part, names)
            per_type = {str(kind): int(count) for kind, count in db.execute(
                "SELECT type, COUNT(*) FROM profile_attribute_definitions WHERE part = ? "
                "GROUP BY type", [part]).fetchall()}
        changes, problems = apply_rules(existing, values, rules, custom=custom,
                                        definitions=definitions, defined_per_type=per_type)
        _many(db, "INSERT INTO profile_attribute_definitions (part, name, type, first_seen) "
                  "VALUES (?, ?, ?, ?) ON CONFLICT (part, name) DO NOTHING",
              [(part, name, change.type, now) for name, change in changes.items()
               if change is not None and name not in definitions])
        _many(db, "UPDATE profile_attribute_definitions SET rejected = rejected + 1 "
                  "WHERE part = ? AND name = ?",
              [(part, p.name) for p in problems if p.rule == "type"])
        after = {name: stored.value for name, stored in existing.items()}
        for name, change in changes.items():
            if change is None:
                db.execute(f"DELETE FROM {table} WHERE profile_id = ? AND name = ?",
                           [profile_id, name])
                after.pop(name, None)
                continue
            encoded = json.dumps(change.value)
            db.execute(
                f"INSERT INTO {table} (profile_id, name, type, value, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (profile_id, name) DO UPDATE SET "
                "type = excluded.type, value = excluded.value, updated_at = excluded.updated_at",
                [profile_id, name, change.type, encoded, now],
            )
            after[name] = json.loads(encoded)
        return problems, after

    def _definitions(self, db: Database, part: str, names: list[str]) -> dict[str, str]:
        """name -> defined type, of those of `names` the account has defined."""
        if not names:
            return {}
        return {str(name): str(kind) for name, kind in db.execute(
            "SELECT name, type FROM profile_attribute_definitions WHERE part = ? AND name IN "
            f"({','.join('?' * len(names))})", [part, *names]).fetchall()}

    def _attribute(self, db: Database, profile_id: str, name: str) -> Any:
        row = db.execute(
            "SELECT value FROM profile_system_attributes WHERE profile_id = ? AND name = ?",
            [profile_id, name],
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def _set_consent(self, db: Database, profile_id: str, changes: dict[str, bool],
                     now: float) -> None:
        _many(
            db,
            "INSERT INTO profile_consent (profile_id, purpose, granted, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (profile_id, purpose) DO UPDATE SET "
            "granted = excluded.granted, updated_at = excluded.updated_at",
            [(profile_id, purpose, int(on), now) for purpose, on in changes.items()],
        )

    def _record_problems(self, db: Database, profile_id: str, message_id: str,
                         problems: list[Problem], now: float) -> None:
        if not problems:
            return
        for problem in problems:
            log.warning("profile %s, message %s: %s", profile_id, message_id, problem)
        _many(
            db,
            "INSERT INTO profile_rejections (profile_id, message_id, attribute, rule, detail, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(profile_id, message_id, p.name, p.rule, p.detail, now) for p in problems],
        )
        counts: dict[str, int] = {}
        for p in problems:
            counts[f"attribute_{p.rule}"] = counts.get(f"attribute_{p.rule}", 0) + 1
        # Qualified: PostgreSQL finds a bare `value` ambiguous (the row or excluded).
        _many(
            db,
            "INSERT INTO profile_stats (name, value) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET value = profile_stats.value + excluded.value",
            list(counts.items()),
        )

    # -- reading ------------------------------------------------------------------------

