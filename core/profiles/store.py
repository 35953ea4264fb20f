"""The profile store: step 2 of a message's way, in the outbox's own database (SQLite or
PostgreSQL).

`ProfileStore` is the pipeline's `ProfileHook`: `prepare(db, messages)` returns the accept
call's `ProfileBatch` (crossdock.profiles.batch), whose `seen(message_id)` answers dedup and
`resolve(message)` turns a validated message into the `EnrichedMessage`s to route (system
events such as session_start / session_end first, the message itself last), and whose
`flush()` writes the changes. All run in the pipeline's accept transaction, so profile
changes commit exactly with the outbox rows.

`sweep_sessions(db, now)` is the timer side: session_end events for sessions idle for the
session timeout. All times come from the injectable `clock` (seconds since the epoch).

Concurrency. On SQLite the accept transaction is BEGIN IMMEDIATE: one writer at a time, so
resolving and merging need nothing more. On PostgreSQL many daemons accept at once, and two of
them may get messages of one person at the same moment (a1 + u on one, a2 + u on the other).
Each transaction therefore takes, before it reads anything it will decide on:

1. the advisory locks of every identity key the messages carry (`identity:userId:u`,
   `identity:anonymousId:a1`, an alias' previousId as both, a trait email) and of their
   message ids (the dedup window), all sorted by lock number;
2. then the advisory locks of the profiles that own those identities (`profile:<id>`), sorted,
   re-reading the owners until they are the locked ones.

Step 1 makes "is there a profile for u yet?" a question only one transaction at a time asks,
so u never gets two known profiles; step 2 keeps a profile from being merged away by a
transaction that reached it through another identity (its email) while this one writes to it.
Every transaction waits only for a lock ordered after all it holds (identity keys before
profiles, each by number), so they cannot deadlock. `prepare(db, messages)`, called by the
pipeline once per accept transaction, takes both steps for the whole batch before it reads.
Advisory locks rather than SELECT ... FOR UPDATE: an identity not yet stored has no row to
lock, and a unique-violation retry would have to redo the whole accept transaction.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from crossdock.config import ProfilesConfig
from crossdock.dedup import Dedup, message_key
from crossdock.models import EnrichedMessage, Message, format_time
from crossdock.outbox.locks import is_postgres, lock_keys
from crossdock.profiles import identity
from crossdock.profiles.batch import (
    DEFINITIONS_LOCK,
    PARTS,
    TABLES,
    ProfileBatch,
    enriched_with,
    identity_keys,
    message_traits,
)
from crossdock.profiles.consent import granted
from crossdock.profiles.migrations import upgrade_profiles
from crossdock.profiles.sessions import SessionEvent, sessions_of, sweep

log = logging.getLogger("crossdock.profiles")

#: event name of the system event enqueued when a person is erased
PROFILE_DELETED = "profile_deleted"
#: how the outbox rows of snapshot exports (crossdock.snapshots) start their message id:
#: they hold a person's attributes, so erasing the person deletes those not yet written
SNAPSHOT_MESSAGE_PREFIX = "snapshot:"

__all__ = ["DEFINITIONS_LOCK", "ProfileBatch", "ProfileStore", "identity_keys", "message_traits"]


@dataclass(frozen=True, slots=True)
class ProfileRef:
    """One live profile as `ProfileStore.page` lists it."""

    id: str
    user_id: str | None
    updated_at: float


@dataclass
class Deleted:
    """What `ProfileStore.delete` erased."""

    profile_id: str
    identities: dict[str, list[str]] = field(default_factory=dict)
    merged: list[str] = field(default_factory=list)
    event: EnrichedMessage | None = None


class ProfileStore:
    """One profile per person, in SQLite or PostgreSQL (see the package docstring)."""

    def __init__(
        self,
        config: ProfilesConfig | None = None,
        *,
        db: Database | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or ProfilesConfig()
        self.clock = clock
        self.dedup = Dedup(self.config.dedup_window)
        self._migrated: set[int] = set()
        if db is not None:
            self.migrate(db)

    # -- schema -------------------------------------------------------------------------

    def migrate(self, db: Database) -> list[str]:
        """Create or upgrade the profile and dedup tables in `db` (once per connection). On
        PostgreSQL they are outbox migrations (crossdock.outbox.pg_schema), applied when the
        outbox opens and by `crossdock db upgrade`, so there is nothing to do here."""
        if id(db) in self._migrated or is_postgres(db):
            return []
        applied = upgrade_profiles(db) + Dedup.migrate(db)
        self._migrated.add(id(db))
        return applied

    # -- ProfileHook --------------------------------------------------------------------

    def prepare(self, db: Database, messages: list[Message]) -> ProfileBatch:
        """The profile work of one accept transaction: reads what `messages` need, set-wise
        (on PostgreSQL after locking their identities, message ids and profiles in one
        global order, see the module docstring); `resolve` each message in order, then
        `flush` before the transaction commits."""
        self.migrate(db)
        return ProfileBatch(self, db, messages)

    def lock(self, db: Database, messages: list[Message]) -> set[str]:
        """PostgreSQL: lock the messages' identities and message ids, then the profiles that
        own those identities; returns the profiles locked."""
        identities = [key for message in messages for key in identity_keys(message)]
        lock_keys(db, [identity.identity_lock_key(k, v) for k, v in identities]
                  + [Dedup.lock_name(message_key(m.message_id)) for m in messages])
        return identity.lock_owners(db, identities)

    def seen(self, db: Database, message_id: str) -> bool:
        """True when `message_id` was accepted inside the dedup window."""
        self.migrate(db)
        return self.dedup.seen(db, message_key(message_id), self.clock())

    def resolve(self, db: Database, message: Message) -> list[EnrichedMessage]:
        """Resolve one message on its own, in the caller's transaction (a batch of one:
        `prepare`, `ProfileBatch.resolve`, `flush`)."""
        batch = self.prepare(db, [message])
        out = batch.resolve(message)
        batch.flush()
        return out

    # -- timer side ---------------------------------------------------------------------

    def sweep_sessions(self, db: Database, now: float | None = None) -> list[EnrichedMessage]:
        """session_end events for every session idle for the session timeout at `now`;
        call inside the transaction that routes and enqueues them."""
        self.migrate(db)
        now = self.clock() if now is None else now
        return [self._system_event(db, event)
                for event in sweep(db, now, self.config.session_timeout)]

    def purge(self, db: Database, now: float | None = None) -> int:
        """Forget dedup keys older than the dedup window; returns how many."""
        self.migrate(db)
        return self.dedup.purge(db, self.clock() if now is None else now)

    # -- enrichment ---------------------------------------------------------------------

    def enrich(
        self, db: Database, profile_id: str, message: dict[str, Any], *,
        known_attributes: tuple[dict[str, Any], dict[str, Any]] | None = None,
    ) -> EnrichedMessage:
        """`message` with the person's current attributes, identities and granted consent.
        `known_attributes`: the profile's (custom, system) attributes as `attributes` would
        read them, when the caller has them already."""
        if known_attributes is None:
            custom, system, consent = self._view(db, profile_id)
        else:
            (custom, system), consent = known_attributes, self.consent(db, profile_id)
        user_attributes = {**custom, **system}
        newest = db.execute(
            "SELECT type, value FROM profile_identities WHERE profile_id = ? "
            "ORDER BY last_seen DESC", [profile_id]).fetchall()
        return enriched_with(message, profile_id, user_attributes,
                             [(str(k), str(v)) for k, v in newest],
                             lambda: identity.user_id_of(db, profile_id), consent)

    def _view(self, db: Database, profile_id: str) -> tuple[dict[str, Any], dict[str, Any],
                                                              set[str]]:
        """(custom attributes, system attributes, granted consent) of a profile in one query:
        what `attributes` and `consent` read, in the same order."""
        custom: dict[str, Any] = {}
        system: dict[str, Any] = {}
        stated: dict[str, bool] = {}
        parts = (custom, system)
        for part, name, value in db.execute(
            "SELECT 0, name, value FROM profile_custom_attributes WHERE profile_id = ? "
            "UNION ALL SELECT 1, name, value FROM profile_system_attributes WHERE profile_id = ? "
            "UNION ALL SELECT 2, purpose, CAST(granted AS TEXT) FROM profile_consent "
            "WHERE profile_id = ? ORDER BY 1, 2",
            [profile_id, profile_id, profile_id],
        ).fetchall():
            if part == 2:
                stated[str(name)] = str(value) == "1"
            else:
                parts[part][name] = json.loads(value)
        return custom, system, granted(stated, self.config.consent_defaults)

    def session_message(self, event: SessionEvent) -> dict[str, Any]:
        """The track message of a session_start / session_end event (without its ids)."""
        session = event.session
        properties: dict[str, Any] = {
            "sessionId": session.session_id,
            "startedAt": format_time(session.started_at),
            "messageCount": session.message_count,
        }
        if session.ended_at is not None:
            properties["endedAt"] = format_time(session.ended_at)
            properties["durationSeconds"] = round(session.ended_at - session.started_at, 3)
        return {
            "type": "track",
            "event": event.name,
            # Deterministic: a sweep that runs twice (crash before commit) makes one row.
            "messageId": f"{event.name}-{session.id}-{session.session_id}"[:100],
            "sessionId": session.session_id,
            "timestamp": format_time(event.at),
            "properties": properties,
            "context": {"crossdock": {"system": True}},
            "integrations": {},
        }

    def _system_event(self, db: Database, event: SessionEvent) -> EnrichedMessage:
        session = event.session
        identities = dict(db.execute(
            "SELECT type, value FROM profile_identities WHERE profile_id = ? "
            "AND type IN ('userId', 'anonymousId') ORDER BY last_seen",
            [session.profile_id],
        ).fetchall())
        message = self.session_message(event)
        message.update({k: v for k, v in identities.items() if v})
        enriched = self.enrich(db, session.profile_id, message)
        enriched.system = True
        enriched.session_started_at = session.started_at
        return enriched

    # -- reading ------------------------------------------------------------------------

    def _live(self, db: Database, profile_id: str) -> str:
        return identity.live(db, profile_id)

    def find(self, db: Database, ref: str, by: str | None = None) -> str | None:
        """The live profile id for a profile id, userId, anonymousId or email; `by` (one of
        crossdock.profiles.attributes.LOOKUP_KINDS, checked by the callers that take it from
        a person: crossdock.people) looks `ref` up as that only (an anonymousId that is also
        someone's userId finds the right person)."""
        self.migrate(db)
        if by in (None, "profileId"):
            row = db.execute("SELECT id, merged_into FROM profiles WHERE id = ?",
                             [ref]).fetchone()
            if row is not None:
                return str(row[1] or row[0])
        if by in (None, "userId"):
            known = identity.known_profile(db, ref)
            if known is not None:
                return known
        for kind in ("userId", "anonymousId", "email"):
            if by is not None and by != kind:
                continue
            found = identity.owner(db, kind, ref if kind != "email" else ref.strip().lower())
            if found is not None:
                return self._live(db, found)
        return None

    def attributes(self, db: Database, profile_id: str) -> dict[str, dict[str, Any]]:
        """{"system": {...}, "custom": {...}} current attribute values."""
        result: dict[str, dict[str, Any]] = {}
        for custom, table in TABLES.items():
            result["custom" if custom else "system"] = {
                name: json.loads(value)
                for name, value in db.execute(
                    f"SELECT name, value FROM {table} WHERE profile_id = ? ORDER BY name",
                    [profile_id],
                ).fetchall()
            }
        return result

    def consent(self, db: Database, profile_id: str) -> set[str]:
        """The purposes the person granted: what they said, and for every purpose they never
        mentioned its default (profiles.consent_defaults). The one answer the forwarding
        rules and the routed `consent` read."""
        stated = {
            str(purpose): bool(on)
            for purpose, on in db.execute(
                "SELECT purpose, granted FROM profile_consent WHERE profile_id = ?",
                [profile_id],
            ).fetchall()
        }
        return granted(stated, self.config.consent_defaults)

    def show(self, db: Database, ref: str, by: str | None = None) -> dict[str, Any] | None:
        """Everything about one person, for `crossdock profiles show` (`ref` and `by` as
        `find` takes them)."""
        profile_id = self.find(db, ref, by)
        if profile_id is None:
            return None
        row = db.execute(
            "SELECT id, user_id, created_at, updated_at, message_count FROM profiles "
            "WHERE id = ?", [profile_id],
        ).fetchone()
        identities: dict[str, list[str]] = {}
        for kind, value in db.execute(
            "SELECT type, value FROM profile_identities WHERE profile_id = ? "
            "ORDER BY type, first_seen", [profile_id],
        ).fetchall():
            identities.setdefault(kind, []).append(value)
        attributes = self.attributes(db, profile_id)
        types = {
            ("custom" if custom else "system", name): kind
            for custom, table in TABLES.items()
            for name, kind in db.execute(
                f"SELECT name, type FROM {table} WHERE profile_id = ?", [profile_id]
            ).fetchall()
        }
        consent: dict[str, dict[str, Any]] = {
            purpose: {"granted": bool(on), "updated_at": format_time(at), "default": False}
            for purpose, on, at in db.execute(
                "SELECT purpose, granted, updated_at FROM profile_consent WHERE profile_id = ? "
                "ORDER BY purpose", [profile_id],
            ).fetchall()
        }
        for purpose, on in self.config.consent_defaults.items():
            # Never said: the default is the answer, shown as such.
            consent.setdefault(purpose, {"granted": on, "updated_at": None, "default": True})
        consent = dict(sorted(consent.items()))
        return {
            "id": row[0],
            "userId": row[1],
            "known": row[1] is not None,
            "created_at": format_time(row[2]),
            "updated_at": format_time(row[3]),
            "messages": row[4],
            "identities": identities,
            "attributes": {
                part: {name: {"type": types[(part, name)], "value": value}
                       for name, value in values.items()}
                for part, values in attributes.items()
            },
            "consent": consent,
            "sessions": [
                {"sessionId": s.session_id, "started_at": format_time(s.started_at),
                 "last_seen_at": format_time(s.last_seen_at),
                 "ended_at": format_time(s.ended_at) if s.ended_at is not None else None,
                 "messages": s.message_count}
                for s in sessions_of(db, profile_id)
            ],
            "merges": [
                {"from": src, "into": dst, "reason": reason, "at": format_time(at)}
                for src, dst, reason, at in db.execute(
                    "SELECT from_profile, into_profile, reason, merged_at FROM profile_merges "
                    "WHERE into_profile = ? OR from_profile IN "
                    "(SELECT id FROM profiles WHERE merged_into = ?) ORDER BY merged_at, id",
                    [profile_id, profile_id],
                ).fetchall()
            ],
            "rejections": [
                {"message": mid, "attribute": attr, "rule": rule, "detail": detail,
                 "at": format_time(at)}
                for mid, attr, rule, detail, at in db.execute(
                    "SELECT message_id, attribute, rule, detail, at FROM profile_rejections "
                    "WHERE profile_id = ? ORDER BY id DESC LIMIT 50", [profile_id],
                ).fetchall()
            ],
        }

    def delete(self, db: Database, ref: str) -> Deleted | None:
        """Erase a person: the profile, the profiles merged into it, and everything they held.
        Returns what was erased and a `profile_deleted` system event to route (None: no such
        profile). Call inside the transaction that enqueues the event."""
        profile_id = self.find(db, ref)
        if profile_id is None:
            return None
        if is_postgres(db):
            # Not while a daemon merges into it or writes to it; found again once held.
            identity.lock_profiles(db, [profile_id])
            profile_id = self.find(db, profile_id)
            if profile_id is None:
                return None
        now = self.clock()
        show = self.show(db, profile_id) or {}
        merged = [str(r[0]) for r in db.execute(
            "SELECT id FROM profiles WHERE merged_into = ?", [profile_id]).fetchall()]
        ids = [profile_id, *merged]
        marks = ",".join("?" * len(ids))
        message: dict[str, Any] = {
            "type": "track",
            "event": PROFILE_DELETED,
            "messageId": f"{PROFILE_DELETED}-{profile_id}"[:100],
            "timestamp": format_time(now),
            "properties": {"profileId": profile_id, "identities": show.get("identities", {})},
            "context": {"crossdock": {"system": True}},
            "integrations": {},
        }
        identities = show.get("identities", {})
        for key in ("userId", "anonymousId"):
            if identities.get(key):
                message[key] = identities[key][-1]
        event = EnrichedMessage(
            message=message, profile_id=profile_id,
            identities={k: v[-1] for k, v in identities.items() if v}, system=True,
        )
        for table, column in (
            ("profile_identities", "profile_id"), ("profile_system_attributes", "profile_id"),
            ("profile_custom_attributes", "profile_id"), ("profile_consent", "profile_id"),
            ("profile_sessions", "profile_id"), ("profile_rejections", "profile_id"),
            ("profile_merges", "into_profile"), ("profile_merges", "from_profile"),
            ("profiles", "id"),
        ):
            db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
        # Snapshot rows of the person not yet in a file (or in a file that failed and waits
        # to be put again) would put them in a later export: gone with them. A row leased
        # now is in a file being put at this moment; if that put fails, the row is gone
        # from its next attempt too.
        self._forget_snapshot_rows(db, ids)
        db.execute(
            "INSERT INTO profile_stats (name, value) VALUES ('profiles_deleted', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = profile_stats.value + 1"
        )
        return Deleted(profile_id, identities, merged, event)

    def page(self, db: Database, after: str | None, limit: int, *,
             changed_since: float | None = None) -> list[ProfileRef]:
        """Live profiles (not merged into another) in id order: at most `limit` of those
        whose id comes after `after` (None: from the first), and with `changed_since` only
        those updated after that time. Keyset paging, the same SQL on both engines: a
        profile that exists from the first page to the last is listed exactly once,
        however many are added, merged or erased in between."""
        self.migrate(db)
        if limit < 1:
            raise ValueError(f"limit: at least 1, got {limit}")
        where: list[str] = ["merged_into IS NULL"]
        params: list[Any] = []
        if after is not None:
            where.append("id > ?")
            params.append(after)
        if changed_since is not None:
            where.append("updated_at > ?")
            params.append(changed_since)
        rows = db.execute(
            f"SELECT id, user_id, updated_at FROM profiles WHERE {' AND '.join(where)} "
            "ORDER BY id LIMIT ?", [*params, limit]).fetchall()
        return [ProfileRef(str(pid), None if uid is None else str(uid), float(at))
                for pid, uid, at in rows]

    def _forget_snapshot_rows(self, db: Database, profile_ids: list[str]) -> None:
        """Delete the snapshot rows of these profiles not in a delivered file yet. Per
        destination a snapshot export ever wrote to (export_runs: crossdock.snapshots.run),
        so the outbox's (destination, person) index finds them: no scan of the outbox."""
        if not is_postgres(db) and not db["export_runs"].exists():
            return  # no snapshot export ever ran here
        marks = ",".join("?" * len(profile_ids))
        people = [f"p:{i}" for i in profile_ids]
        for (destination,) in db.execute(
                "SELECT DISTINCT destination FROM export_runs").fetchall():
            db.execute(f"DELETE FROM outbox WHERE destination = ? AND person IN ({marks}) "
                       f"AND substr(message_id, 1, {len(SNAPSHOT_MESSAGE_PREFIX)}) = ? "
                       "AND state <> 'delivered'",
                       [destination, *people, SNAPSHOT_MESSAGE_PREFIX])

    def definitions(self, db: Database) -> list[dict[str, Any]]:
        """The account's attribute definitions, for `crossdock profiles attributes`: name,
        part (system or custom), the type its first datapoint fixed, when it was first seen,
        how many profiles hold it now, and how many datapoints of another type were
        rejected."""
        self.migrate(db)
        held: dict[tuple[str, str], int] = {}
        for custom, table in TABLES.items():
            for name, count in db.execute(
                f"SELECT name, COUNT(*) FROM {table} GROUP BY name").fetchall():
                held[(PARTS[custom], str(name))] = int(count)
        return [
            {"name": name, "part": part, "type": kind, "first_seen": format_time(first_seen),
             "profiles": held.get((part, name), 0), "rejected": int(rejected)}
            for part, name, kind, first_seen, rejected in db.execute(
                "SELECT part, name, type, first_seen, rejected FROM "
                "profile_attribute_definitions ORDER BY part, name").fetchall()
        ]

    def stats(self, db: Database) -> dict[str, int]:
        """Counters for /metrics: profiles (known, anonymous), open sessions, rejections."""
        self.migrate(db)
        known, anonymous = db.execute(
            "SELECT COUNT(user_id), COUNT(*) - COUNT(user_id) "
            "FROM profiles WHERE merged_into IS NULL"
        ).fetchone()
        open_sessions = db.execute(
            "SELECT COUNT(*) FROM profile_sessions WHERE ended_at IS NULL").fetchone()[0]
        merges = db.execute("SELECT COUNT(*) FROM profile_merges").fetchone()[0]
        stats = {"profiles_known": int(known), "profiles_anonymous": int(anonymous),
                 "sessions_open": int(open_sessions), "merges": int(merges)}
        for name, value in db.execute("SELECT name, value FROM profile_stats").fetchall():
            stats[str(name)] = int(value)
        return stats
