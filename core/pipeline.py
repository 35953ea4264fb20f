"""Steps 1-4 of a message's way: accept -> profile -> route -> outbox, in one transaction.

    pipeline = build_pipeline(loaded)          # opens the outbox (and the profile store)
    result = pipeline.accept([raw, raw, ...])  # returns after the commit
    result.accepted, result.duplicates, result.errors, result.rows

A bad message is reported by its index and the rest of the call goes on; everything the call
accepts (profile updates and outbox rows alike) commits together, or, if something unexpected
fails, nothing does and the exception propagates. After the commit `on_commit` is told which
destinations got new rows, so the delivery workers of this process start at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlite_utils import Database

from crossdock.config import ConfiguredDestination, LoadedConfig
from crossdock.errors import MessageError
from crossdock.models import EnrichedMessage, Message, enrich_without_profile, parse_message
from crossdock.outbox.base import KeptMessage, NewRow, Outbox, shared_sql
from crossdock.profiles.attributes import SYSTEM_ALIASES
from crossdock.profiles.consent import OPT_IN_PURPOSES, message_consent

if TYPE_CHECKING:
    from crossdock.profiles.store import ProfileStore

log = logging.getLogger("crossdock.pipeline")

#: messages per transaction when accepting a long stream (`crossdock send` of a big file)
DEFAULT_CHUNK = 500
#: the trait names that state an opt-in, as the profile store reads traits (`split_traits`)
_OPT_IN_NAMES = frozenset([*OPT_IN_PURPOSES,
                           *(name for name, canonical in SYSTEM_ALIASES.items()
                             if canonical in OPT_IN_PURPOSES)])

Router = Callable[[EnrichedMessage, ConfiguredDestination], Any]


class ProfileBatch(Protocol):
    """The profile hook's work in one accept transaction (`ProfileHook.prepare`)."""

    def seen(self, message_id: str) -> bool:
        """True when the message id was accepted inside the dedup window (a duplicate)."""
        ...

    def resolve(self, message: Message) -> list[EnrichedMessage]:
        """The message enriched with its person, plus any system events it causes (such as
        session_end), each to be routed. May raise MessageError to reject this message."""
        ...

    def flush(self) -> None:
        """Write what the messages resolved so far changed (before the watchers read the
        database, and before the commit)."""
        ...


class ProfileHook(Protocol):
    """Step 2, the profile store, as the pipeline sees it. It runs inside the accept
    transaction, with its handle (`Outbox.transaction()`, typed as `shared_sql` says)."""

    def prepare(self, db: Database, messages: list[Message]) -> ProfileBatch:
        """Once per accept call with all its messages: take and read what they will need up
        front (a store on a database several daemons share locks it all in one order, so
        they cannot deadlock); the batch then resolves them one by one, in order."""
        ...


class ProfileWatcher(Protocol):
    """Told what the profile hook did, in the same accept transaction (audiences' on-change
    sync: crossdock.audiences.sync.AudienceWatch; the data dictionary:
    crossdock.profiles.dictionary.DictionaryWatch). Registered with `Pipeline.watch`."""

    #: whether `resolved` reads the profile tables, so the message's profile changes must be
    #: written before it is called (the audiences' sync reads attributes; the dictionary
    #: counts the message alone and reads the store's rejections only in `finish`)
    reads_profiles: bool

    def prepare(self, db: Database, messages: list[Message]) -> None:
        """After the profile hook's `prepare`: take this watcher's locks (after the hook's,
        so the lock order stays one), or nothing."""
        ...

    def resolved(self, db: Database, message: Message,
                 enriched: list[EnrichedMessage]) -> list[EnrichedMessage]:
        """After the profile hook resolved `message` into `enriched`: more messages to route
        after them (none: an empty list)."""
        ...

    def finish(self, db: Database) -> None:
        """After the call's last message and its outbox rows, just before the commit: write
        what this watcher gathered over the call (the data dictionary: one row per distinct
        name, not per message), or nothing."""
        ...


#: the profile hook a pipeline holds (`build_pipeline`'s: the ProfileStore)
HookT = TypeVar("HookT", bound=ProfileHook)


@dataclass
class AcceptResult:
    """What one accept call did. `errors` holds (index in the input, problems)."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    errors: list[tuple[int, list[str]]] = field(default_factory=list)
    rows: int = 0
    #: the destinations given new rows (the ones to wake once the rows are committed)
    destinations: set[str] = field(default_factory=set)

    def extend(self, other: AcceptResult, offset: int) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.errors += [(index + offset, problems) for index, problems in other.errors]
        self.rows += other.rows
        self.destinations |= other.destinations


#: for each destination, the index of the first with the same route (crossdock.route's
#: `same_routes`): a message is routed once for all of them
Twins = Callable[[Sequence[ConfiguredDestination]], list[int]]


def default_router() -> tuple[Router, type]:
    """The route step and its Skip type (imported late: importing it compiles every
    mapping's templates)."""
    from crossdock.route.router import Skip, route

    return route, Skip


def default_twins() -> Twins:
    """The default route step's `same_routes` (imported late, as `default_router`)."""
    from crossdock.route.router import same_routes

    return same_routes


class Pipeline(Generic[HookT]):
    """Accepts raw messages into the outbox for every enabled destination; `profiles` is
    its profile hook (None: messages are enriched from themselves alone)."""

    def __init__(
        self,
        loaded: LoadedConfig,
        outbox: Outbox,
        profiles: HookT | None = None,
        *,
        on_commit: Callable[[set[str]], None] | None = None,
        router: Router | None = None,
        skip_type: type | None = None,
        owns_outbox: bool = False,
    ) -> None:
        self.loaded = loaded
        self.outbox = outbox
        self.profiles = profiles
        self.on_commit = on_commit
        self._router = router
        self._skip_type = skip_type
        #: set with the default router only: another router's routes are its own business
        self._twins: Twins | None = None
        self._owns_outbox = owns_outbox
        #: told of every message the profile hook resolves (`watch`)
        self.watchers: list[ProfileWatcher] = []

    def watch(self, watcher: ProfileWatcher) -> None:
        """Call `watcher` in every accept transaction after the profile hook (a pipeline
        without one resolves nobody, so calls no watcher)."""
        self.watchers.append(watcher)

    def _route_fn(self) -> tuple[Router, type | None]:
        if self._router is None:
            self._router, self._skip_type = default_router()
            self._twins = default_twins()
        return self._router, self._skip_type

    def _firsts(self, destinations: Sequence[ConfiguredDestination]) -> list[int] | None:
        """`Twins` of the destinations (None: each routes on its own)."""
        return None if self._twins is None else self._twins(destinations)

    def accept(self, raws: Sequence[Any], *, wake: bool = True) -> AcceptResult:
        """Validate, enrich, route and store `raws` in one transaction; returns after commit.
        `wake=False` for a caller that runs this inside a transaction of its own (the
        collector's group commit): it calls `wake(result.destinations)` after ITS commit, so
        no worker looks for the rows (and waits on the open transaction) before they are
        there."""
        return self.accept_parts([raws], wake=wake)[0]

    def accept_parts(self, parts: Sequence[Sequence[Any]], *,
                     wake: bool = True) -> list[AcceptResult]:
        """`accept` of all the parts' messages together (one profile `prepare`, so on
        PostgreSQL one sorted lock set), answered part by part: each part's result is what
        `accept(part)` would have given after the parts before it (error indexes count
        within the part). The collector's PostgreSQL group commit: one request per part."""
        results = [AcceptResult() for _ in parts]
        parsed: list[tuple[int, int, Message]] = []
        for part, raws in enumerate(parts):
            for index, raw in enumerate(raws):
                try:
                    parsed.append((part, index, parse_message(raw)))
                except MessageError as exc:
                    results[part].errors.append((index, exc.problems))
        if not parsed:
            return results
        route, skip = self._route_fn()
        destinations = self.loaded.routed
        firsts = self._firsts(destinations)
        #: the part of each accepted message id (a repeat of an id is a duplicate)
        part_of: dict[str, int] = {}
        with self.outbox.transaction() as tx:
            db = shared_sql(tx)
            batch: ProfileBatch | None = None
            if self.profiles is not None:
                messages = [message for _, _, message in parsed]
                batch = self.profiles.prepare(db, messages)
                for watcher in self.watchers:
                    watcher.prepare(db, messages)
            rows: list[NewRow] = []
            kept: list[KeptMessage] = []
            keep = self.loaded.config.outbox.keep_messages > 0
            owners: dict[str, str] = {}
            for part, index, message in parsed:
                result = results[part]
                message_id = message.message_id
                if message_id in part_of or (batch is not None and batch.seen(message_id)):
                    result.duplicates.append(message_id)
                    continue
                part_of[message_id] = part
                try:
                    enriched = self._resolve(db, batch, message)
                    message_rows = [
                        row for e in enriched
                        for row in _route_one(e, destinations, route, skip, firsts)
                    ]
                except MessageError as exc:
                    result.errors.append((index, exc.problems))
                    continue
                for row in message_rows:
                    owners[row.message_id] = message_id
                rows += message_rows
                if keep:
                    kept += [kept_message(e) for e in enriched]
                result.accepted.append(message_id)
            if batch is not None:
                batch.flush()
            new_keys = self._enqueue(rows)
            # Kept whether or not a destination took it today: a backfill routes it to
            # the destinations added later (docs/delivery.md, "Backfill").
            self.outbox.keep(kept)
            if self.profiles is not None:
                # Last: a watcher's writes may lock rows every daemon's accept touches
                # (the dictionary's day rows); held from here to the commit only.
                for watcher in self.watchers:
                    watcher.finish(db)
        # As many new keys as rows: every row was new (the keys are the rows' own), so
        # nothing was seen before and one call's rows are all its part's.
        all_new = len(new_keys) == len(rows)
        if self.profiles is None and not all_new:
            # Without a profile store the outbox's unique (destination, message_id) is the
            # dedup: a message all of whose rows were already there was seen before.
            routed = {owners[r.message_id] for r in rows}
            fresh = {owners[m] for _, m in new_keys}
            again = routed - fresh
            if again:
                for result in results:
                    result.duplicates += [m for m in result.accepted if m in again]
                    result.accepted = [m for m in result.accepted if m not in again]
        if all_new and len(results) == 1:
            results[0].rows += len(rows)
            results[0].destinations.update(row.destination for row in rows)
        else:
            for row in rows:
                if (row.destination, row.message_id) in new_keys:
                    result = results[part_of[owners[row.message_id]]]
                    result.rows += 1
                    result.destinations.add(row.destination)
        for result in results:
            result.errors.sort(key=lambda e: e[0])
        if wake:
            self.wake({d for result in results for d in result.destinations})
        return results

    def _resolve(self, db: Database, batch: ProfileBatch | None,
                 message: Message) -> list[EnrichedMessage]:
        if batch is None:
            return [self._enrich_alone(message)]
        enriched = batch.resolve(message)
        if any(watcher.reads_profiles for watcher in self.watchers):
            # Such a watcher reads the profile tables: it sees this message's changes
            # written. The others leave the batch's writes to one flush per call.
            batch.flush()
        for watcher in self.watchers:
            enriched = enriched + watcher.resolved(db, message, enriched)
        return enriched

    def accept_enriched(self, enriched: Sequence[EnrichedMessage]) -> int:
        """Route already-enriched messages (system events such as session_end from a session
        sweep) to every destination and store the rows; returns how many rows were new.

        Joins a transaction already open on the outbox (then the wake-up may come before
        that transaction commits; the workers' poll finds the rows anyway)."""
        if not enriched:
            return 0
        route, skip = self._route_fn()
        destinations = self.loaded.routed
        firsts = self._firsts(destinations)
        with self.outbox.transaction():
            rows = [row for e in enriched
                    for row in _route_one(e, destinations, route, skip, firsts)]
            new_keys = self._enqueue(rows)
        fresh = [r for r in rows if (r.destination, r.message_id) in new_keys]
        self.wake({r.destination for r in fresh})
        return len(fresh)

    def route_to(self, enriched: EnrichedMessage,
                 destinations: Sequence[ConfiguredDestination]) -> list[NewRow]:
        """The rows the current filter and mapping make of a message for `destinations`,
        stored nowhere (replay and backfill, crossdock.replay). Raises MessageError when it
        cannot be shaped for one of them."""
        route, skip = self._route_fn()
        return _route_one(enriched, destinations, route, skip, self._firsts(destinations))

    def _enrich_alone(self, message: Message) -> EnrichedMessage:
        """Without a profile store: the message alone, its consent answered as the store
        would for a person who said only this (profiles.consent_defaults for the rest)."""
        return enrich_without_profile(message.to_json(), self._message_consent)

    def _message_consent(self, context: dict[str, Any], traits: dict[str, Any]) -> set[str]:
        defaults = self.loaded.config.profiles.consent_defaults
        if "consent" not in context and _OPT_IN_NAMES.isdisjoint(traits):
            # Most messages say nothing about consent: `message_consent` would give the
            # defaults, after three passes over the traits and the context to find that out.
            return {purpose for purpose, on in defaults.items() if on}
        return message_consent(context, traits, defaults)

    def wake(self, destinations: set[str]) -> None:
        """Tell `on_commit` that these destinations have new committed rows."""
        if destinations and self.on_commit is not None:
            try:
                self.on_commit(destinations)
            except Exception:  # waking is an optimisation; the rows are committed
                log.exception("on_commit callback failed")

    def _enqueue(self, rows: list[NewRow]) -> set[tuple[str, str]]:
        """Write the rows; the (destination, message_id) pairs that were new."""
        if not rows:
            return set()
        return self.outbox.enqueue_new(rows)

    def accept_iter(
        self,
        raws: Iterable[Any],
        *,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Callable[[int, AcceptResult], None] | None = None,
    ) -> AcceptResult:
        """Accept a long stream in transactions of `chunk_size` messages; `progress(done,
        chunk_result)` is called after each commit. Error indexes count from the stream start."""
        total = AcceptResult()
        chunk: list[Any] = []
        done = 0
        for raw in raws:
            chunk.append(raw)
            if len(chunk) >= chunk_size:
                done = self._accept_chunk(chunk, done, total, progress)
                chunk = []
        if chunk:
            self._accept_chunk(chunk, done, total, progress)
        return total

    def _accept_chunk(
        self, chunk: list[Any], done: int, total: AcceptResult,
        progress: Callable[[int, AcceptResult], None] | None,
    ) -> int:
        result = self.accept(chunk)
        total.extend(result, done)
        done += len(chunk)
        if progress is not None:
            progress(done, result)
        return done

    def close(self) -> None:
        """Close the outbox if this pipeline opened it (build_pipeline)."""
        if self._owns_outbox:
            self.outbox.close()


def person_key(enriched: EnrichedMessage) -> str | None:
    """Whom a message is about, for per-person order at each destination (docs/delivery.md):
    the profile store's id for the person, else the message's userId, else its anonymousId;
    None when it names nobody."""
    if enriched.profile_id:
        return f"p:{enriched.profile_id}"
    message = enriched.message
    if message.get("userId"):
        return f"u:{message['userId']}"
    if message.get("anonymousId"):
        return f"a:{message['anonymousId']}"
    return None


def kept_message(enriched: EnrichedMessage) -> KeptMessage:
    """What the outbox keeps of an accepted message (outbox.keep_messages)."""
    return KeptMessage(str(enriched.message.get("messageId", "")), enriched.to_json(),
                       person_key(enriched))


def _route_one(
    enriched: EnrichedMessage,
    destinations: Sequence[ConfiguredDestination],
    route: Router,
    skip: type | None,
    firsts: Sequence[int] | None = None,
) -> list[NewRow]:
    """The message's rows; `firsts` (`Twins`) names the destinations routed alike, whose
    rows then share one payload (never mutated: the outbox only encodes it)."""
    message_id = str(enriched.message.get("messageId", ""))
    kind = enriched.message.get("type")
    person = person_key(enriched)
    rows = []
    only = enriched.destinations
    #: the payload (or skip) routed for the first destination of each twin group
    routed: dict[int, Any] = {}
    for index, destination in enumerate(destinations):
        if kind not in destination.plugin.message_types:
            continue
        if only is not None and destination.name not in only:
            continue
        first = index if firsts is None else firsts[index]
        if first in routed:
            payload = routed[first]
        else:
            try:
                payload = routed[first] = route(enriched, destination)
            except MessageError as exc:
                # The message is fine but cannot be shaped for this destination: name it.
                raise MessageError(
                    [f"{destination.name}: {p}" for p in exc.problems]) from exc
        if (skip is not None and isinstance(payload, skip)) or payload is None:
            continue
        rows.append(NewRow(destination.name, message_id, payload, person))
    return rows


def build_pipeline(
    loaded: LoadedConfig,
    outbox: Outbox | None = None,
    *,
    profiles: ProfileStore | None = None,
    on_commit: Callable[[set[str]], None] | None = None,
) -> Pipeline[ProfileStore]:
    """A pipeline for a config: opens the configured outbox unless one is given, and attaches
    the profile store (`crossdock.profiles.make_profile_hook`) in the outbox's database."""
    from crossdock.outbox import open_outbox
    from crossdock.profiles import make_profile_hook

    owns = outbox is None
    if outbox is None:
        outbox = open_outbox(loaded.outbox_url)
    if profiles is None:
        profiles = make_profile_hook(loaded, outbox)
    pipeline = Pipeline(loaded, outbox, profiles, on_commit=on_commit, owns_outbox=owns)
    # The data dictionary counts every call's datapoints (crossdock.profiles.dictionary).
    from crossdock.profiles.dictionary import DictionaryWatch

    pipeline.watch(DictionaryWatch(profiles.config.dictionary, profiles.clock))
    if loaded.config.audiences:
        # Audiences with sync_on_change re-evaluate the people each message changes.
        from crossdock.audiences.sync import watch_profiles

        watch_profiles(pipeline)
    return pipeline
