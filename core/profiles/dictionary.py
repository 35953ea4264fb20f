"""The data dictionary and data health: every event name, event property and user attribute
the pipeline has seen, with its types, first and last seen, volume per day, and the datapoints
the attribute rules rejected, by rule (docs/profiles.md, "Data dictionary").

Written by `DictionaryWatch`, a `crossdock.pipeline.ProfileWatcher` that `build_pipeline`
registers with every pipeline that has a profile store. It counts each resolved message's
datapoints in memory and writes them in the watcher's `finish`, at the end of the accept call
and inside its transaction: one upsert row per distinct (kind, name, type, day) of the call,
never a statement per message, and committed exactly with the call's outbox rows (a crash
before the commit counts nothing; a commit counts once).

Rejections are not worked out again here: the profile store records every one it makes in
`profile_rejections` (crossdock.profiles.store). `prepare` notes the highest id of that table;
`finish` reads the rows above it that belong to this call's messages (on PostgreSQL another
daemon's rows may be committed meanwhile, and message ids are the call's own: the store holds
their dedup locks) and counts them per (attribute, rule, day).

On PostgreSQL the upserts take row locks on the day's rows that every daemon's accept touches,
so they come last in the transaction (after the outbox rows) and in one sorted order: they are
held only until the commit, and two daemons cannot deadlock on them.

Bounded (`profiles.dictionary`): a name new to the dictionary when it already holds
`max_names` names of that kind is counted under `OTHER_NAMES` instead (a source that puts ids
in property keys would otherwise add a row per id per day). The names known are read once
and then kept by the watcher, read again every `KNOWN_REFRESH` seconds, so on a fleet the cap
is approximate: each daemon may add names others added meanwhile. Days older than
`keep_days` are forgotten by the first call of each day, in its transaction (old days' rows
are written by nobody, so this takes no lock another accept waits for).

Reading: `read_dictionary(db, days=..., now=...)` for `crossdock profiles dictionary` and the
console's Data dictionary page, the one function both use.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from crossdock.config import DictionaryConfig
from crossdock.models import (
    EnrichedMessage,
    Message,
    PageMessage,
    ScreenMessage,
    TrackMessage,
    format_time,
)
from crossdock.profiles.attributes import shown, split_traits, value_type
from crossdock.profiles.store import message_traits

#: what a dictionary entry names: an event (track event, page or screen name), a property of
#: an event (top-level key of `properties`), a user attribute (a trait, system or custom)
KINDS = ("event", "property", "trait")
#: the profile store's rule codes (crossdock.profiles.attributes.Problem.rule), as an
#: operator reads them (the CLI's table and the console's cards)
RULE_LABELS = {
    "name_length": "too long (name)",
    "truncated": "too long (value truncated)",
    "type": "wrong type",
    "reserved_prefix": "reserved name",
    "type_limit": "over the per-type cap",
    "name": "invalid name",
    "identity": "invalid email",
    "consent": "invalid consent purpose",
}
#: a longer name (a property key, say) is recorded cut to this length
MAX_NAME = 200
#: a page or screen call without a name is counted under this one
UNNAMED = "(unnamed)"
#: rows per multi-row upsert statement (7 parameters a row; SQLite allows 32,766)
_CHUNK = 500
#: the type a `null` property value is counted as
NULL_TYPE = "null"
#: the name datapoints of new names are counted under once a kind holds `max_names` names
OTHER_NAMES = "(other names)"
#: how often the watcher reads again which names the dictionary holds (other daemons add some)
KNOWN_REFRESH = 600.0


def day_of(at: float) -> str:
    """The UTC day (YYYY-MM-DD) a time falls on; the dictionary's volumes are per UTC day."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _name(name: Any) -> str | None:
    """A name as the dictionary records it (None: not worth a row)."""
    if not isinstance(name, str) or not name:
        return None
    if len(name) <= MAX_NAME and "\x00" not in name:
        return name  # nearly every name: no copy
    return shown(name)[:MAX_NAME]


def datapoints(message: Message) -> Iterable[tuple[str, str, str]]:
    """The (kind, name, type) datapoints a message carries: its event name (track, page,
    screen, typed by the message type), the top-level keys of its properties (typed by value)
    and the traits it sets (system names normalised, typed by value; a null removes, so is
    not a datapoint)."""
    if isinstance(message, TrackMessage | PageMessage | ScreenMessage):
        event = message.event if isinstance(message, TrackMessage) else message.name
        yield "event", _name(event) or UNNAMED, message.type
        for key, value in message.properties.items():
            name = _name(key)
            if name is not None:
                yield "property", name, NULL_TYPE if value is None else value_type(value)
    traits = message_traits(message)
    if traits:
        system, custom = split_traits(traits)
        for part in (system, custom):
            for key, value in part.items():
                name = _name(key)
                if name is not None and value is not None:
                    yield "trait", name, value_type(value)


@dataclass
class _Call:
    """What one accept call gathered, written by `finish`."""

    now: float
    #: the highest profile_rejections id before the call
    mark: int
    #: (kind, name, type) -> datapoints; all of the call's are counted at `now`, on its day
    seen: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    message_ids: set[str] = field(default_factory=set)


class DictionaryWatch:
    """Records the data dictionary; a `crossdock.pipeline.ProfileWatcher` (module docstring)."""

    #: `resolved` counts the message alone; the store's rejections are read in `finish`
    reads_profiles = False

    def __init__(self, config: DictionaryConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = DictionaryConfig() if config is None else config
        self.clock = clock
        #: kind -> the names the dictionary holds (read at `_known_at`), and the day whose
        #: old days were last forgotten
        self._known: dict[str, set[str]] | None = None
        self._known_at = 0.0
        self._forgot_for: str | None = None
        #: the call in progress per transaction handle (several threads accept at once on
        #: PostgreSQL, each with its own handle; SQLite's one handle serves one at a time)
        self._calls: weakref.WeakKeyDictionary[Database, _Call] = weakref.WeakKeyDictionary()

    def prepare(self, db: Database, messages: list[Message]) -> None:
        self._calls[db] = self._start(db)

    def _start(self, db: Database) -> _Call:
        mark = db.execute("SELECT COALESCE(MAX(id), 0) FROM profile_rejections").fetchone()[0]
        return _Call(self.clock(), int(mark))

    def resolved(self, db: Database, message: Message,
                 enriched: list[EnrichedMessage]) -> list[EnrichedMessage]:
        call = self._calls.get(db)
        if call is None:  # a caller that did not prepare
            call = self._calls[db] = self._start(db)
        call.message_ids.add(message.message_id)
        call.seen.update(datapoints(message))
        return []

    def finish(self, db: Database) -> None:
        call = self._calls.pop(db, None)
        if call is None or not call.message_ids:
            return
        day = day_of(call.now)
        if self._forgot_for != day:
            self._forget_old_days(db, call.now)
            self._forgot_for = day
        _upsert(db, "profile_dictionary", ("kind", "name", "type", "day"),
                sorted((*key, day, n, call.now, call.now)
                       for key, n in self._capped(db, call).items()))
        # (attribute, rule, day) -> the times of its rejections in this call
        rejected: dict[tuple[str, str, str], list[float]] = {}
        # Bounded on both sides: `id > ?` alone is a third of the table to a generic plan
        # (psycopg prepares the statement), which reads it all on PostgreSQL once the table
        # has outgrown its statistics; a closed range is an index range scan. Most calls
        # reject nothing: then the top is the mark and nothing more is read.
        top = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM profile_rejections")
                  .fetchone()[0])
        for message_id, attribute, rule, at in db.execute(
            "SELECT message_id, attribute, rule, at FROM profile_rejections "
            "WHERE id > ? AND id <= ?", [call.mark, top],
        ).fetchall() if top > call.mark else []:
            if message_id not in call.message_ids:
                continue  # another daemon's, committed while this call ran (PostgreSQL)
            key = (str(attribute)[:MAX_NAME], str(rule), day_of(float(at)))
            rejected.setdefault(key, []).append(float(at))
        _upsert(db, "profile_dictionary_rejections", ("name", "rule", "day"),
                sorted((*key, len(times), min(times), max(times))
                       for key, times in rejected.items()))


    def _capped(self, db: Database, call: _Call) -> Counter[tuple[str, str, str]]:
        """The call's datapoints, those of names past the cap under OTHER_NAMES."""
        if self._known is None or call.now - self._known_at >= KNOWN_REFRESH:
            known: dict[str, set[str]] = {kind: set() for kind in KINDS}
            for kind, name in db.execute(
                    "SELECT DISTINCT kind, name FROM profile_dictionary").fetchall():
                known.setdefault(str(kind), set()).add(str(name))
            self._known, self._known_at = known, call.now
        out: Counter[tuple[str, str, str]] = Counter()
        for (kind, name, type_), n in call.seen.items():
            names = self._known.setdefault(kind, set())
            if name not in names:
                if len(names) >= self.config.max_names:
                    name = OTHER_NAMES
                # Noted before the commit: a call rolled back leaves a name here that is not
                # stored, which only makes the cap a little early until the next refresh.
                names.add(name)
            out[(kind, name, type_)] += n
        return out

    def _forget_old_days(self, db: Database, now: float) -> None:
        """Forget the counts of days older than `keep_days` (module docstring)."""
        oldest = day_of(now - 86_400 * (self.config.keep_days - 1))
        forgot = db.execute("DELETE FROM profile_dictionary WHERE day < ?", [oldest]).rowcount
        db.execute("DELETE FROM profile_dictionary_rejections WHERE day < ?", [oldest])
        if forgot:
            self._known = None  # names may have left with their days


def _upsert(db: Database, table: str, key: tuple[str, ...],
            rows: list[tuple[Any, ...]]) -> None:
    """Add `rows` (key columns, count, first seen, last seen) to `table`'s counts, in
    multi-row statements: the same SQL on both engines."""
    columns = (*key, "datapoints", "first_seen", "last_seen")
    marks = "(" + ",".join("?" * len(columns)) + ")"
    # CASE rather than min()/max(): SQLite's scalar min is PostgreSQL's LEAST.
    update = (
        f"datapoints = {table}.datapoints + excluded.datapoints, "
        f"first_seen = CASE WHEN excluded.first_seen < {table}.first_seen "
        f"THEN excluded.first_seen ELSE {table}.first_seen END, "
        f"last_seen = CASE WHEN excluded.last_seen > {table}.last_seen "
        f"THEN excluded.last_seen ELSE {table}.last_seen END"
    )
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        db.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"{','.join([marks] * len(chunk))} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {update}",
            [value for row in chunk for value in row],
        )


# -- reading ------------------------------------------------------------------------------


@dataclass
class Entry:
    """One event, property or trait of the dictionary."""

    kind: str
    name: str
    #: datapoints per type seen, most first (a property sent as a string and as a number
    #: shows both: a data-health finding of its own)
    types: dict[str, int]
    first_seen: float
    last_seen: float
    total: int
    #: datapoints per day, oldest first, for the days asked (zero-filled)
    per_day: list[int]
    #: a trait's type as the account defined it (profile_attribute_definitions), else None
    defined_type: str | None = None
    #: datapoints of this name the rules rejected, by rule
    rejected: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "types": self.types,
                "defined_type": self.defined_type, "first_seen": format_time(self.first_seen),
                "last_seen": format_time(self.last_seen), "total": self.total,
                "per_day": self.per_day, "rejected": self.rejected}


@dataclass
class Rejection:
    """Rejected datapoints of one attribute under one rule."""

    name: str
    rule: str
    count: int
    first_seen: float
    last_seen: float
    per_day: list[int]

    @property
    def label(self) -> str:
        return RULE_LABELS.get(self.rule, self.rule)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rule": self.rule, "label": self.label,
                "count": self.count, "first_seen": format_time(self.first_seen),
                "last_seen": format_time(self.last_seen), "per_day": self.per_day}


@dataclass
class Dictionary:
    """What `read_dictionary` returns: the entries (by kind, then name), the rejections
    (most first) and the days the per-day lists cover (oldest first)."""

    days: list[str]
    entries: list[Entry]
    rejections: list[Rejection]

    def by_rule(self) -> dict[str, int]:
        """Rejected datapoints per rule over all time, most first."""
        totals: dict[str, int] = {}
        for r in self.rejections:
            totals[r.rule] = totals.get(r.rule, 0) + r.count
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    def to_json(self) -> dict[str, Any]:
        return {"days": self.days, "entries": [e.to_json() for e in self.entries],
                "rejections": [r.to_json() for r in self.rejections],
                "rejected_by_rule": self.by_rule()}


def day_range(days: int, now: float) -> list[str]:
    """The `days` UTC days ending with the one `now` falls on, oldest first."""
    if days < 1:
        raise ValueError(f"days: at least 1, got {days}")
    return [day_of(now - 86_400 * back) for back in range(days - 1, -1, -1)]


def read_dictionary(db: Database, *, days: int = 30, now: float | None = None,
                    kind: str | None = None) -> Dictionary:
    """The dictionary as recorded: every entry with its totals over all time and its volume
    on each of the last `days` days (UTC, ending today), the rejections likewise. `kind`
    keeps one kind of entry (KINDS). Four grouped queries, whatever the traffic."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}, got {kind!r}")
    window = day_range(days, time.time() if now is None else now)
    index = {day: i for i, day in enumerate(window)}
    # Totals over all time and the window's days, each summed by the database: the rows are
    # one per name, type and day, so a long history is a GROUP BY, not Python's work.
    where, params = ("WHERE kind = ?", [kind]) if kind is not None else ("", [])
    entries: dict[tuple[str, str], Entry] = {}
    for kind_, name, type_, count, first, last in db.execute(
        "SELECT kind, name, type, SUM(datapoints), MIN(first_seen), MAX(last_seen) "
        f"FROM profile_dictionary {where} GROUP BY kind, name, type", params,
    ).fetchall():
        entry = entries.get((kind_, name))
        if entry is None:
            entry = entries[(kind_, name)] = Entry(
                str(kind_), str(name), {}, float(first), float(last), 0, [0] * len(window))
        entry.types[str(type_)] = int(count)
        entry.first_seen = min(entry.first_seen, float(first))
        entry.last_seen = max(entry.last_seen, float(last))
        entry.total += int(count)
    recent = "WHERE day >= ?" + (" AND kind = ?" if kind is not None else "")
    for kind_, name, day, count in db.execute(
        "SELECT kind, name, day, SUM(datapoints) FROM profile_dictionary "
        f"{recent} GROUP BY kind, name, day", [window[0], *params],
    ).fetchall():
        found = entries.get((kind_, name))
        if found is not None and day in index:
            found.per_day[index[day]] = int(count)
    rejections: dict[tuple[str, str], Rejection] = {}
    for name, rule, count, first, last in db.execute(
        "SELECT name, rule, SUM(datapoints), MIN(first_seen), MAX(last_seen) FROM "
        "profile_dictionary_rejections GROUP BY name, rule",
    ).fetchall():
        rejections[(name, rule)] = Rejection(str(name), str(rule), int(count), float(first),
                                             float(last), [0] * len(window))
    for name, rule, day, count in db.execute(
        "SELECT name, rule, day, datapoints FROM profile_dictionary_rejections "
        "WHERE day >= ?", [window[0]],
    ).fetchall():
        rejection = rejections.get((name, rule))
        if rejection is not None and day in index:
            rejection.per_day[index[day]] = int(count)
    if kind in (None, "trait"):
        # Traits are defined per (part, name); system and custom names never clash.
        defined = {str(name): str(type_) for name, type_ in db.execute(
            "SELECT name, type FROM profile_attribute_definitions").fetchall()}
        by_name: dict[str, dict[str, int]] = {}
        for r in rejections.values():
            by_name.setdefault(r.name, {})[r.rule] = r.count
        for (kind_, name), entry in entries.items():
            if kind_ == "trait":
                entry.defined_type = defined.get(name)
                entry.rejected = by_name.get(name, {})
    for entry in entries.values():
        entry.types = dict(sorted(entry.types.items(), key=lambda item: (-item[1], item[0])))
    return Dictionary(
        days=window,
        entries=sorted(entries.values(), key=lambda e: (KINDS.index(e.kind), e.name)),
        rejections=sorted(rejections.values(), key=lambda r: (-r.count, r.name, r.rule)),
    )
