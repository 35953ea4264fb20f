"""Resolving the messages of one accept transaction set-wise (issue 20).

`ProfileStore.prepare(db, messages)` returns a `ProfileBatch`. It reads what the messages
need with one query per step for the whole batch (dedup keys, identities, the profiles that
own them with their identities, attributes and consent, attribute definitions, open
sessions), resolves every message in memory against those rows, in order, exactly as the
rules of crossdock.profiles.identity / attributes / sessions say, and `flush()` writes every
row it changed with one statement per table. Before, each message cost about 17 statements
of its own; a 100-message batch now costs about a dozen plus what is rare (a merge, a new
session, a first datapoint of an attribute).

The rows held here are the truth for the transaction: a row is read from the database once,
the first time a message needs it (prefetched for the whole batch in `load`; anything a merge
or a stored email brings in later is read then, set-wise too), and every later message sees
the changes of the earlier ones. Nothing is written until `flush`; the pipeline flushes
before a ProfileWatcher that reads the profile tables (`reads_profiles`) is told of a
message, and once before the outbox rows are written,
all in the accept transaction, so "queued" still means committed with the profile.

A merge moves rows that no message reads (the source's closed sessions, its rejections, the
profiles merged into it earlier) with one UPDATE each at once: they are not held here.

PostgreSQL: `load` runs after the store's locks (identity keys and message ids, then their
owners; see crossdock.profiles.store), so every row it reads is one no other transaction can
change until commit. A profile reached later only through a stored email is locked when it is
reached and read again then (`_owner(..., fresh=True)`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from crossdock import json_shape
from crossdock.dedup import message_key
from crossdock.errors import MessageError
from crossdock.models import AliasMessage, EnrichedMessage, IdentifyMessage, Message
from crossdock.outbox.locks import is_postgres, lock_keys
from crossdock.profiles import identity
from crossdock.profiles.attributes import Problem, apply_rules, shown, split_traits
from crossdock.profiles.consent import consent_changes, consent_resets, granted
from crossdock.profiles.sessions import SESSION_START, Session, SessionEvent, end_of
from crossdock.profiles.sql import CHUNK, delete_pairs, select_in, select_pairs, upsert

if TYPE_CHECKING:
    from crossdock.profiles.store import ProfileStore

log = logging.getLogger("crossdock.profiles")

PARTS = {False: "system", True: "custom"}
TABLES = {False: "profile_system_attributes", True: "profile_custom_attributes"}
#: the advisory lock a transaction takes to define attributes (PostgreSQL)
DEFINITIONS_LOCK = "profile-attribute-definitions"
_SESSION_COLUMNS = "id, session_id, profile_id, started_at, last_seen_at, ended_at, message_count"


@dataclass(slots=True)
class _Profile:
    id: str
    user_id: str | None
    created_at: float
    updated_at: float
    merged_into: str | None
    message_count: int


@dataclass(slots=True)
class _Identity:
    type: str
    value: str
    profile_id: str
    first_seen: float
    last_seen: float


_SCALARS = (str, int, float, bool)


@dataclass(slots=True)
class _Attribute:
    type: str
    #: the JSON text, as the table holds it
    text: str
    updated_at: float
    #: json.loads(text), decoded once
    decoded: Any

    @classmethod
    def of(cls, kind: str, value: Any, updated_at: float) -> _Attribute:
        text = json.dumps(value)
        # A scalar reads back as itself; a container as what JSON makes of it (lists).
        return cls(kind, text, updated_at,
                   value if isinstance(value, _SCALARS) else json.loads(text))

    def value(self) -> Any:
        """The value as a read of the row gives it (a container is a fresh copy)."""
        return self.decoded if isinstance(self.decoded, _SCALARS) else json.loads(self.text)


IdentityKey = tuple[str, str]


def message_traits(message: Message) -> dict[str, Any]:
    """The user attributes a message sets: context.traits, then an identify's traits."""
    traits = dict(message.context.get("traits") or {})
    if isinstance(message, IdentifyMessage):
        traits.update(message.traits)
    return traits


def identity_keys(message: Message) -> list[IdentityKey]:
    """The (kind, value) identities resolving `message` may look up or claim."""
    keys: list[IdentityKey] = []
    if message.user_id:
        keys.append(("userId", str(message.user_id)))
    if message.anonymous_id:
        keys.append(("anonymousId", str(message.anonymous_id)))
    if isinstance(message, AliasMessage) and message.previous_id:
        keys += [("anonymousId", message.previous_id), ("userId", message.previous_id)]
    email = split_traits(message_traits(message))[0].get("email")
    # An email with NUL is refused by the attribute rules, so it is never an identity.
    if isinstance(email, str) and email.strip() and "\x00" not in email:
        keys.append(("email", email.strip().lower()))
    return keys


def enriched_with(message: dict[str, Any], profile_id: str, user_attributes: dict[str, Any],
                  newest_identities: Iterable[tuple[str, str]],
                  user_id_of: Callable[[], str | None], consent: set[str]) -> EnrichedMessage:
    """The enriched message of a person: of each identity type the newest value, except the
    ids the message was sent with (they describe this device better than the latest)."""
    identities: dict[str, str] = {}
    for kind, value in newest_identities:
        identities.setdefault(kind, value)
    for key in ("userId", "anonymousId"):
        if message.get(key):
            identities[key] = str(message[key])
    if not identities.get("userId"):
        user_id = user_id_of()
        if user_id:
            identities["userId"] = user_id
    return EnrichedMessage(message=message, profile_id=profile_id,
                           user_attributes=user_attributes, identities=identities,
                           consent=consent)


class ProfileBatch:
    """The profile rows of one accept transaction, read set-wise, changed in memory, written
    by `flush` (see the module docstring). Made by `ProfileStore.prepare`."""

    def __init__(self, store: ProfileStore, db: Database, messages: Sequence[Message]) -> None:
        self.store = store
        self.db = db
        self.pg = is_postgres(db)
        self.clock: Callable[[], float] = store.clock
        self.rules = store.config.attributes
        self.profiles: dict[str, _Profile | None] = {}
        self.identities: dict[IdentityKey, _Identity | None] = {}
        #: identities per loaded profile (a profile is loaded with all its rows)
        self.owned: dict[str, dict[IdentityKey, _Identity]] = {}
        self.known: dict[str, str | None] = {}
        self.attributes: dict[bool, dict[str, dict[str, _Attribute]]] = {False: {}, True: {}}
        self.consent: dict[str, dict[str, tuple[int, float]]] = {}
        self.definitions: dict[str, dict[str, str]] = {"system": {}, "custom": {}}
        self.looked_up: dict[str, set[str]] = {"system": set(), "custom": set()}
        self.per_type: dict[str, dict[str, int]] = {}
        self.definitions_locked = False
        self.sessions: dict[str, Session | None] = {}
        self.dedup: dict[str, float | None] = {}
        #: profiles locked by this transaction (PostgreSQL), or made by it
        self.locked: set[str] = set()
        # what flush writes
        self.dirty_profiles: set[str] = set()
        self.dirty_identities: set[IdentityKey] = set()
        self.dirty_attributes: dict[bool, set[tuple[str, str]]] = {False: set(), True: set()}
        self.dirty_consent: set[tuple[str, str]] = set()
        self.dirty_sessions: dict[int, Session] = {}
        self.new_definitions: list[tuple[str, str, str, float]] = []
        self.rejected: dict[tuple[str, str], int] = {}
        self.remembered: dict[str, float] = {}
        self.rejections: list[list[Any]] = []
        self.counts: dict[str, int] = {}
        self.load(messages)

    # -- reading, set-wise ---------------------------------------------------------------

    def load(self, messages: Sequence[Message]) -> None:
        """Read everything `messages` will need, one query per step."""
        if self.pg:
            self.locked |= self.store.lock(self.db, list(messages))
        self._need_dedup([message_key(m.message_id) for m in messages])
        keys = [k for m in messages for k in identity_keys(m)]
        self._need_identities(keys)
        self._need_known([v for kind, v in keys if kind == "userId"])
        owners = {row.profile_id for row in self.identities.values() if row is not None}
        self._need_profiles(owners | {p for p in self.known.values() if p is not None})
        names: dict[str, set[str]] = {"system": set(), "custom": set()}
        for m in messages:
            for custom, values in zip((False, True), split_traits(message_traits(m)),
                                      strict=True):
                names[PARTS[custom]] |= set(self._storable(values))
        self._need_definitions(names)
        self._need_sessions([m.session_id for m in messages if m.session_id])
        if not self.pg:
            # Stored emails are linked by every message of their profile (link_email). On
            # PostgreSQL their owners are not locked yet, so they are read when reached.
            emails = [row.decoded for attributes in self.attributes[False].values()
                      for name, row in attributes.items() if name == "email"]
            self._need_identities([("email", e.strip().lower())
                                   for e in emails if isinstance(e, str) and e])

    def _need_dedup(self, keys: Iterable[str]) -> None:
        missing = sorted({k for k in keys if k not in self.dedup})
        if not missing:
            return
        self.dedup.update(dict.fromkeys(missing))
        for key, at in select_in(self.db, "SELECT key, seen_at FROM dedup_keys "
                                 "WHERE key IN ({IN})", missing):
            self.dedup[str(key)] = float(at)

    def _need_identities(self, keys: Iterable[IdentityKey], *, fresh: bool = False) -> None:
        missing = sorted({k for k in keys if fresh or k not in self.identities})
        if not missing:
            return
        for key in missing:
            self.identities[key] = None
        for row in select_pairs(self.db, "t.type, t.value, t.profile_id, t.first_seen, "
                                "t.last_seen", "profile_identities", ("type", "value"), missing):
            self._hold_identity(_Identity(str(row[0]), str(row[1]), str(row[2]),
                                          float(row[3]), float(row[4])))

    def _hold_identity(self, row: _Identity) -> None:
        key = (row.type, row.value)
        old = self.identities.get(key)
        if old is not None:
            self.owned.get(old.profile_id, {}).pop(key, None)
        self.identities[key] = row
        if row.profile_id in self.owned:
            self.owned[row.profile_id][key] = row

    def _need_known(self, user_ids: Iterable[str]) -> None:
        missing = sorted({u for u in user_ids if u not in self.known})
        if not missing:
            return
        self.known.update(dict.fromkeys(missing))
        for pid, uid in select_in(self.db, "SELECT id, user_id FROM profiles WHERE "
                                  "merged_into IS NULL AND user_id IN ({IN})", missing):
            self.known[str(uid)] = str(pid)

    def _need_profiles(self, ids: Iterable[str]) -> None:
        """Load these profiles (and those they were merged into) with all their rows."""
        missing = sorted({p for p in ids if p not in self.profiles})
        if not missing:
            return
        while missing:  # (and again for the profiles those were merged into)
            for pid in missing:
                self.profiles[pid] = None
                self.owned[pid] = {}
                self.attributes[False][pid] = {}
                self.attributes[True][pid] = {}
                self.consent[pid] = {}
            for row in select_in(self.db, "SELECT id, user_id, created_at, updated_at, "
                                 "merged_into, message_count FROM profiles WHERE id IN ({IN})",
                                 missing):
                self.profiles[str(row[0])] = _Profile(
                    str(row[0]), None if row[1] is None else str(row[1]), float(row[2]),
                    float(row[3]), None if row[4] is None else str(row[4]), int(row[5]))
            for row in select_in(self.db, "SELECT type, value, profile_id, first_seen, "
                                 "last_seen FROM profile_identities WHERE profile_id IN ({IN})",
                                 missing):
                key = (str(row[0]), str(row[1]))
                held = self.identities.get(key)
                if held is None and key not in self.identities:
                    held = _Identity(key[0], key[1], str(row[2]), float(row[3]), float(row[4]))
                    self.identities[key] = held
                # A row this batch moved elsewhere already is that profile's now.
                if held is not None and held.profile_id in self.owned:
                    self.owned[held.profile_id][key] = held
            for part, pid, name, kind, value, at in self._attributes_of(missing):
                self.attributes[bool(part)][str(pid)][str(name)] = _Attribute(
                    # orjson where it reads as json does (json_shape.loads): every attribute
                    # of every profile a call loads is decoded here
                    str(kind), str(value), float(at), json_shape.loads(value))
            for pid, purpose, on, at in select_in(
                    self.db, "SELECT profile_id, purpose, granted, updated_at FROM "
                    "profile_consent WHERE profile_id IN ({IN})", missing):
                self.consent[str(pid)][str(purpose)] = (int(on), float(at))
            missing = sorted({p.merged_into for p in self.profiles.values()
                              if p is not None and p.merged_into is not None
                              and p.merged_into not in self.profiles})

    def _attributes_of(self, ids: list[str]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for custom, table in TABLES.items():
            out += [(int(custom), *row) for row in select_in(
                self.db, f"SELECT profile_id, name, type, value, updated_at FROM {table} "
                "WHERE profile_id IN ({IN})", ids)]
        return out

    def _need_definitions(self, names: dict[str, set[str]], *, fresh: bool = False) -> None:
        for part, wanted in names.items():
            missing = sorted(n for n in wanted if fresh or n not in self.looked_up[part])
            if not missing:
                continue
            self.looked_up[part] |= set(missing)
            for name, kind in select_in(
                    self.db, "SELECT name, type FROM profile_attribute_definitions WHERE "
                    "part = ? AND name IN ({IN})", missing, before=[part]):
                self.definitions[part][str(name)] = str(kind)

    def _need_sessions(self, session_ids: Iterable[str]) -> None:
        missing = sorted({s for s in session_ids if s not in self.sessions})
        if not missing:
            return
        self.sessions.update(dict.fromkeys(missing))
        # On PostgreSQL the row lock makes a concurrent sweep skip these sessions (SKIP
        # LOCKED), and a sweep that got there first has ended them: they drop out here.
        for row in select_in(self.db, f"SELECT {_SESSION_COLUMNS} FROM profile_sessions "
                             "WHERE session_id IN ({IN}) AND ended_at IS NULL ORDER BY id"
                             + (" FOR UPDATE" if self.pg else ""), missing):
            session = Session(int(row[0]), str(row[1]), str(row[2]), float(row[3]),
                              float(row[4]), None, int(row[6]))
            self.sessions[session.session_id] = session  # the latest open one wins

    # -- the rows, as the rules read them --------------------------------------------------

    def _owner(self, kind: str, value: str, *, fresh: bool = False) -> str | None:
        key = (kind, value)
        if fresh and key not in self.dirty_identities:
            self._need_identities([key], fresh=True)
        elif key not in self.identities:
            self._need_identities([key])
        row = self.identities[key]
        if row is None:
            return None
        if row.profile_id not in self.profiles:
            self._need_profiles([row.profile_id])
        return row.profile_id

    def _profile(self, profile_id: str) -> _Profile | None:
        if profile_id not in self.profiles:
            self._need_profiles([profile_id])
        return self.profiles[profile_id]

    def _user_id_of(self, profile_id: str) -> str | None:
        row = self._profile(profile_id)
        return None if row is None else row.user_id

    def _known_profile(self, user_id: str) -> str | None:
        if user_id not in self.known:
            self._need_known([user_id])
        pid = self.known[user_id]
        if pid is None:
            return None
        row = self._profile(pid)
        return pid if row is not None and row.merged_into is None else None

    def _live(self, profile_id: str) -> str:
        row = self._profile(profile_id)
        return profile_id if row is None or row.merged_into is None else row.merged_into

    def _touch_profile(self, profile_id: str) -> _Profile | None:
        row = self._profile(profile_id)
        if row is not None:
            self.dirty_profiles.add(profile_id)
        return row

    # -- identity resolution (crossdock.profiles.identity's rules) -------------------------

    def _create(self, now: float, user_id: str | None = None) -> str:
        pid = identity.new_profile_id()
        self.profiles[pid] = _Profile(pid, user_id, now, now, None, 0)
        self.owned[pid] = {}
        self.attributes[False][pid] = {}
        self.attributes[True][pid] = {}
        self.consent[pid] = {}
        self.dirty_profiles.add(pid)
        self.locked.add(pid)
        if user_id is not None:
            self.known[user_id] = pid
            self._link(pid, "userId", user_id, now)
        return pid

    def _link(self, profile_id: str, kind: str, value: str, now: float) -> None:
        """Give identity (kind, value) to a profile (taking it from another owner)."""
        key = (kind, value)
        if key not in self.identities:
            self._need_identities([key])
        self._profile(profile_id)
        row = self.identities[key]
        if row is None:
            row = _Identity(kind, value, profile_id, now, now)
        else:
            row = _Identity(kind, value, profile_id, row.first_seen, now)
        self._hold_identity(row)
        self.dirty_identities.add(key)

    def _resolve_ids(self, user_id: str | None, anonymous_id: str | None,
                     now: float) -> tuple[str, list[Problem]]:
        problems: list[Problem] = []
        device = self._owner("anonymousId", anonymous_id) if anonymous_id else None
        if user_id is None:
            if device is None:
                assert anonymous_id is not None  # messages carry at least one id
                device = self._create(now)
            if anonymous_id is not None:
                self._link(device, "anonymousId", anonymous_id, now)
            return device, problems
        known = self._known_profile(user_id)
        if known is None:
            if device is not None and self._user_id_of(device) is None:
                row = self._touch_profile(device)
                if row is not None:
                    row.user_id = user_id
                    row.updated_at = now
                self.known[user_id] = device
                self._link(device, "userId", user_id, now)
                known = device
            else:
                known = self._create(now, user_id)
        elif device is not None and device != known and self._user_id_of(device) is None:
            problems += self._merge(
                device, known, f"anonymousId {anonymous_id} identified as userId {user_id}",
                now)
        if anonymous_id is not None:
            self._link(known, "anonymousId", anonymous_id, now)
        return known, problems

    def _alias(self, previous_id: str, user_id: str, now: float) -> tuple[str, list[Problem]]:
        known, problems = self._resolve_ids(user_id, None, now)
        previous = self._owner("anonymousId", previous_id) or self._known_profile(previous_id)
        if previous is not None and previous != known:
            if self._user_id_of(previous) is None:
                problems += self._merge(previous, known,
                                        f"alias of {previous_id} to userId {user_id}", now)
            else:
                problems.append(Problem(
                    "previousId", "alias",
                    f"{previous_id} belongs to another known person; a user id never "
                    "changes, so the profiles were not merged",
                ))
        return known, problems

    def _link_email(self, profile_id: str, email: str, now: float) -> tuple[list[Problem], bool]:
        current = self._owner("email", email)
        if current is not None and current != profile_id and self.pg:
            # Usually locked already (a message carried this email); when the email is the
            # profile's stored one, its owner is locked here, and read again once held.
            held = identity.lock_owners(self.db, [("email", email)])
            current = self._owner("email", email, fresh=True)
            self._reread(held - self.locked)
            self.locked |= held
        if current is None or current == profile_id:
            self._link(profile_id, "email", email, now)
            return [], False
        mine_known = self._user_id_of(profile_id) is not None
        theirs_known = self._user_id_of(current) is not None
        if (mine_known and not theirs_known) or (not mine_known and not theirs_known):
            # Two anonymous visits with one email are one person already.
            return self._merge(current, profile_id, f"same email {email}", now), True
        return [], False

    def _reread(self, profile_ids: set[str]) -> None:
        """Read again profiles read before this transaction held their locks (PostgreSQL);
        this transaction wrote nothing to them (it writes only to locked profiles)."""
        if not profile_ids:
            return
        for pid in profile_ids:
            for key in list(self.owned.pop(pid, {})):
                if key not in self.dirty_identities:
                    self.identities.pop(key, None)
            self.profiles.pop(pid, None)
            self.attributes[False].pop(pid, None)
            self.attributes[True].pop(pid, None)
            self.consent.pop(pid, None)
        self._need_profiles(profile_ids)

    def _merge(self, source: str, target: str, reason: str, now: float) -> list[Problem]:
        """Move everything of `source` into `target` and record the merge (identity.merge's
        rules: where both have an attribute of one type the later value wins, of different
        types the target's)."""
        self._need_profiles([source, target])
        problems: list[Problem] = []
        for key, row in list(self.owned[source].items()):
            self._hold_identity(_Identity(row.type, row.value, target, row.first_seen,
                                          row.last_seen))
            self.dirty_identities.add(key)
        # Rows no message reads move at once; those held here move with them.
        self.db.execute("UPDATE profile_sessions SET profile_id = ? WHERE profile_id = ?",
                        [target, source])
        for sid, session in self.sessions.items():
            if session is not None and session.profile_id == source:
                self.sessions[sid] = replace(session, profile_id=target)
        for number, dirty in list(self.dirty_sessions.items()):
            if dirty.profile_id == source:
                self.dirty_sessions[number] = replace(dirty, profile_id=target)
        self.db.execute("UPDATE profile_rejections SET profile_id = ? WHERE profile_id = ?",
                        [target, source])
        for rejection in self.rejections:
            if rejection[0] == source:
                rejection[0] = target
        for custom in (False, True):
            problems += self._merge_attributes(custom, source, target)
        mine = self.consent[target]
        for purpose, (on, at) in self.consent[source].items():
            if purpose not in mine or at > mine[purpose][1]:
                mine[purpose] = (on, at)
                self.dirty_consent.add((target, purpose))
        for purpose in self.consent[source]:
            self.dirty_consent.add((source, purpose))
        self.consent[source] = {}
        gone = self.profiles[source]
        created = gone.created_at if gone is not None else now
        into = self._touch_profile(target)
        if into is not None:
            into.message_count += gone.message_count if gone is not None else 0
            into.created_at = into.created_at if into.created_at < created else created
            into.updated_at = now
        # Earlier merges into the source now point at the target, so lookups take one step.
        self.db.execute("UPDATE profiles SET merged_into = ? WHERE merged_into = ?",
                        [target, source])
        for held in self.profiles.values():
            if held is not None and (held.merged_into == source or held.id == source):
                held.merged_into = target
                self.dirty_profiles.add(held.id)
        self.db.execute("INSERT INTO profile_merges (from_profile, into_profile, reason, "
                        "merged_at) VALUES (?, ?, ?, ?)", [source, target, reason, now])
        return problems

    def _merge_attributes(self, custom: bool, source: str, target: str) -> list[Problem]:
        problems: list[Problem] = []
        theirs = self.attributes[custom][source]
        mine = self.attributes[custom][target]
        per_type: dict[str, int] = {}
        for row in mine.values():
            per_type[row.type] = per_type.get(row.type, 0) + 1
        for name in sorted(theirs):
            row = theirs[name]
            current = mine.get(name)
            if current is not None:
                if current.type != row.type:
                    problems.append(Problem(
                        name, "type",
                        f"merge: type is fixed as {current.type}; the merged profile's "
                        f"{row.type} value {identity.short(row.text)} was dropped",
                    ))
                    continue
                if current.updated_at >= row.updated_at:
                    continue
            elif custom and per_type.get(row.type, 0) >= self.rules.max_custom_per_type:
                problems.append(Problem(
                    name, "type_limit",
                    f"merge: at most {self.rules.max_custom_per_type} custom {row.type} "
                    "attributes; dropped",
                ))
                continue
            else:
                per_type[row.type] = per_type.get(row.type, 0) + 1
            mine[name] = row
            self.dirty_attributes[custom].add((target, name))
        for name in theirs:
            self.dirty_attributes[custom].add((source, name))
        self.attributes[custom][source] = {}
        return problems

    # -- attributes, consent, sessions -----------------------------------------------------

    def _apply(self, profile_id: str, values: dict[str, Any], *, custom: bool,
               now: float) -> list[Problem]:
        """Apply the attribute rules to the profile; returns the problems."""
        if not values:
            return []
        held = self.attributes[custom][profile_id]
        part = PARTS[custom]
        rules = self.rules
        names = self._storable(values)
        if any(n not in self.looked_up[part] for n in names):
            self._need_definitions({part: set(names)})
        defined = self.definitions[part]
        per_type: dict[str, int] = {}
        if any(n not in defined for n in names):
            # A first datapoint defines the attribute for the account. On PostgreSQL one
            # transaction at a time does that (another daemon may be defining the same name
            # or the last one of a type), so read again under the lock. Rare: once a name.
            if not self.definitions_locked:
                lock_keys(self.db, [DEFINITIONS_LOCK])
                self.definitions_locked = True
                if self.pg:
                    self._need_definitions(self.looked_up, fresh=True)
                    self.per_type.clear()
            per_type = self._defined_per_type(part)
        definitions = {n: defined[n] for n in names if n in defined}
        # apply_rules reads only which names are held and their types: the rows as they are.
        changes, problems = apply_rules(held, values, rules, custom=custom,
                                        definitions=definitions, defined_per_type=per_type)
        for name, change in changes.items():
            if change is not None and name not in definitions and name not in defined:
                defined[name] = change.type
                counts = self.per_type.get(part)
                if counts is not None:
                    counts[change.type] = counts.get(change.type, 0) + 1
                self.new_definitions.append((part, name, change.type, now))
        for p in problems:
            if p.rule == "type":
                self.rejected[(part, p.name)] = self.rejected.get((part, p.name), 0) + 1
        for name, change in changes.items():
            self.dirty_attributes[custom].add((profile_id, name))
            if change is None:
                held.pop(name, None)
            else:
                held[name] = _Attribute.of(change.type, change.value, now)
        return problems

    def _storable(self, values: dict[str, Any]) -> list[str]:
        """The names of `values` the rules could store: only those are looked up
        (PostgreSQL text cannot hold NUL)."""
        return [n for n, v in values.items() if isinstance(n, str) and n and v is not None
                and "\x00" not in n and len(n) <= self.rules.max_name_length]

    def _defined_per_type(self, part: str) -> dict[str, int]:
        if part not in self.per_type:
            self.per_type[part] = {str(kind): int(count) for kind, count in self.db.execute(
                "SELECT type, COUNT(*) FROM profile_attribute_definitions WHERE part = ? "
                "GROUP BY type", [part]).fetchall()}
        return dict(self.per_type[part])

    def _touch_session(self, profile_id: str, session_id: str,
                       now: float) -> tuple[float, list[SessionEvent]]:
        """crossdock.profiles.sessions' rules for a message of `session_id` at `now`."""
        timeout = self.store.config.session_timeout
        self._need_sessions([session_id])
        events: list[SessionEvent] = []
        current = self.sessions[session_id]
        if current is not None:
            if now - current.last_seen_at < timeout and current.profile_id == profile_id:
                seen = current.last_seen_at if current.last_seen_at > now else now
                self._hold_session(replace(current, last_seen_at=seen,
                                           message_count=current.message_count + 1))
                return current.started_at, events
            # Idle too long (the sweep has not run yet), or the device changed hands
            # (logout): the old session ends and this message opens a new one.
            ended = end_of(current, now, timeout)
            self._hold_session(ended.session)
            events.append(ended)
        new_id = self.db.execute(
            "INSERT INTO profile_sessions (session_id, profile_id, started_at, last_seen_at, "
            "message_count) VALUES (?, ?, ?, ?, 1) RETURNING id",
            [session_id, profile_id, now, now],
        ).fetchone()[0]
        started = Session(int(new_id), session_id, profile_id, now, now, None, 1)
        self.sessions[session_id] = started
        events.append(SessionEvent(SESSION_START, started, now))
        return now, events

    def _hold_session(self, session: Session) -> None:
        self.dirty_sessions[session.id] = session
        self.sessions[session.session_id] = session if session.ended_at is None else None

    # -- the message ----------------------------------------------------------------------

    def seen(self, message_id: str) -> bool:
        """True when `message_id` was accepted inside the dedup window."""
        now = self.clock()
        key = message_key(message_id)
        self._need_dedup([key])
        at = self.dedup[key]
        return at is not None and now - at < self.store.dedup.window

    def resolve(self, message: Message) -> list[EnrichedMessage]:
        """Resolve the message's person, apply its attributes, consent and session; return the
        system events it causes and the enriched message, in that order."""
        now = self.clock()
        if isinstance(message, AliasMessage) and message.user_id is None:
            # Refused before anything changes, so the message leaves no trace.
            raise MessageError(["userId: is required for alias (the id previousId joins)"])
        data = message.to_json()
        if isinstance(message, AliasMessage):
            assert message.user_id is not None
            profile_id, problems = self._alias(message.previous_id, message.user_id, now)
            if message.anonymous_id:
                self._link(profile_id, "anonymousId", message.anonymous_id, now)
        else:
            profile_id, problems = self._resolve_ids(message.user_id, message.anonymous_id,
                                                     now)
        system, custom = split_traits(message_traits(message))
        problems += self._apply(profile_id, system, custom=False, now=now)
        problems += self._apply(profile_id, custom, custom=True, now=now)
        stored = self.attributes[False][profile_id].get("email")
        email = None if stored is None else stored.decoded
        if isinstance(email, str) and email:
            found, merged = self._link_email(profile_id, email.strip().lower(), now)
            problems += found
            if merged:
                profile_id = self._live(profile_id)
        consent = consent_changes(message.context, system)
        for purpose in [p for p in consent if "\x00" in p]:
            # PostgreSQL text cannot hold NUL; no real purpose has one. Both engines alike.
            del consent[purpose]
            problems.append(Problem(shown(purpose[:60]), "consent",
                                    "a consent purpose must not contain NUL (\\u0000); "
                                    "ignored"))
        stated = self.consent[profile_id]
        for purpose, on in consent.items():
            stated[purpose] = (int(on), now)
            self.dirty_consent.add((profile_id, purpose))
        for purpose in consent_resets(system):
            if purpose not in consent and purpose in stated:
                # An opt-in sent as null is forgotten: the channel's default answers again.
                del stated[purpose]
                self.dirty_consent.add((profile_id, purpose))
        events: list[SessionEvent] = []
        session_started: float | None = None
        if message.session_id:
            session_started, events = self._touch_session(profile_id, message.session_id, now)
        row = self._touch_profile(profile_id)
        if row is not None:
            row.message_count += 1
            row.updated_at = now
        self._record_problems(profile_id, message.message_id, problems, now)
        key = message_key(message.message_id)
        self.dedup[key] = now
        self.remembered[key] = now
        out = [self._system_event(event) for event in events]
        enriched = self.enrich(profile_id, data)
        enriched.session_started_at = session_started
        out.append(enriched)
        return out

    def _record_problems(self, profile_id: str, message_id: str, problems: list[Problem],
                         now: float) -> None:
        for problem in problems:
            log.warning("profile %s, message %s: %s", profile_id, message_id, problem)
            self.rejections.append([profile_id, message_id, problem.name, problem.rule,
                                    problem.detail, now])
            name = f"attribute_{problem.rule}"
            self.counts[name] = self.counts.get(name, 0) + 1

    def enrich(self, profile_id: str, message: dict[str, Any]) -> EnrichedMessage:
        """`message` with the person's current attributes, identities and granted consent,
        as ProfileStore.enrich reads them from the tables."""
        self._profile(profile_id)
        custom = self.attributes[True][profile_id]
        system = self.attributes[False][profile_id]
        # ORDER BY name: SQLite's BINARY order and PostgreSQL's C collation are code points.
        user_attributes = {name: custom[name].value() for name in sorted(custom)}
        user_attributes.update({name: system[name].value() for name in sorted(system)})
        stated = {purpose: on == 1 for purpose, (on, _) in self.consent[profile_id].items()}
        newest = sorted(self.owned[profile_id].values(), key=lambda r: -r.last_seen)
        return enriched_with(message, profile_id, user_attributes,
                             [(row.type, row.value) for row in newest],
                             lambda: self._user_id_of(profile_id),
                             granted(stated, self.store.config.consent_defaults))

    def _system_event(self, event: SessionEvent) -> EnrichedMessage:
        session = event.session
        self._need_profiles([session.profile_id])
        ids = {row.type: row.value for row in sorted(
            (r for r in self.owned[session.profile_id].values()
             if r.type in ("userId", "anonymousId")), key=lambda r: r.last_seen)}
        message = self.store.session_message(event)
        message.update({k: v for k, v in ids.items() if v})
        enriched = self.enrich(session.profile_id, message)
        enriched.system = True
        enriched.session_started_at = session.started_at
        return enriched

    # -- writing, set-wise -----------------------------------------------------------------

    def flush(self) -> None:
        """Write every row changed since the last flush, one statement per table."""
        db = self.db
        upsert(db, "profiles", ("id", "user_id", "created_at", "updated_at", "merged_into",
                                "message_count"), ("id",),
               [(p.id, p.user_id, p.created_at, p.updated_at, p.merged_into, p.message_count)
                for pid in sorted(self.dirty_profiles) for p in [self.profiles.get(pid)]
                if p is not None])
        upsert(db, "profile_identities", ("type", "value", "profile_id", "first_seen",
                                          "last_seen"), ("type", "value"),
               [(r.type, r.value, r.profile_id, r.first_seen, r.last_seen)
                for key in sorted(self.dirty_identities) for r in [self.identities[key]]
                if r is not None])
        for custom, table in TABLES.items():
            held = self.attributes[custom]
            dirty = sorted(self.dirty_attributes[custom])
            delete_pairs(db, table, ("profile_id", "name"),
                         [(pid, name) for pid, name in dirty if name not in held.get(pid, {})])
            upsert(db, table, ("profile_id", "name", "type", "value", "updated_at"),
                   ("profile_id", "name"),
                   [(pid, name, a.type, a.text, a.updated_at) for pid, name in dirty
                    for a in [held.get(pid, {}).get(name)] if a is not None])
        dirty_consent = sorted(self.dirty_consent)
        delete_pairs(db, "profile_consent", ("profile_id", "purpose"),
                     [(pid, p) for pid, p in dirty_consent if p not in self.consent.get(pid, {})])
        upsert(db, "profile_consent", ("profile_id", "purpose", "granted", "updated_at"),
               ("profile_id", "purpose"),
               [(pid, p, *self.consent[pid][p]) for pid, p in dirty_consent
                if p in self.consent.get(pid, {})])
        upsert(db, "profile_sessions", tuple(_SESSION_COLUMNS.split(", ")), ("id",),
               [(s.id, s.session_id, s.profile_id, s.started_at, s.last_seen_at, s.ended_at,
                 s.message_count) for _, s in sorted(self.dirty_sessions.items())])
        upsert(db, "profile_attribute_definitions", ("part", "name", "type", "first_seen"),
               ("part", "name"), self.new_definitions, update="")
        for (part, name), n in sorted(self.rejected.items()):
            db.execute("UPDATE profile_attribute_definitions SET rejected = rejected + ? "
                       "WHERE part = ? AND name = ?", [n, part, name])
        upsert(db, "dedup_keys", ("key", "seen_at"), ("key",),
               sorted(self.remembered.items()))
        if self.rejections:
            one = "(?, ?, ?, ?, ?, ?)"
            for start in range(0, len(self.rejections), CHUNK):
                chunk = self.rejections[start:start + CHUNK]
                db.execute("INSERT INTO profile_rejections (profile_id, message_id, attribute, "
                           f"rule, detail, at) VALUES {','.join([one] * len(chunk))}",
                           [v for row in chunk for v in row])
        # Qualified: PostgreSQL finds a bare `value` ambiguous (the row or excluded).
        upsert(db, "profile_stats", ("name", "value"), ("name",), sorted(self.counts.items()),
               update="value = profile_stats.value + excluded.value")
        self.dirty_profiles.clear()
        self.dirty_identities.clear()
        self.dirty_attributes = {False: set(), True: set()}
        self.dirty_consent.clear()
        self.dirty_sessions.clear()
        self.new_definitions = []
        self.rejected.clear()
        self.remembered.clear()
        self.rejections = []
        self.counts.clear()

