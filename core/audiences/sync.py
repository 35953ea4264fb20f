"""Keeping destinations in step with audiences: full syncs and on-change syncs.

Every membership change becomes a `track` message routed like any other, but only to the
audience's own destinations (`EnrichedMessage.destinations`):

    {"type": "track", "event": "audience_entered" | "audience_exited",
     "messageId": "audience_entered-<change id>", "properties": {"audience": "<name>"},
     "userId": ..., "anonymousId": ..., "context": {"crossdock": {"audience": "<name>"}}}

enriched with the person's attributes and identities (so the routed payload's `traits` and
`identities` carry email, phone, names, ...). An entry is preceded by an `identify` of the
person (messageId `audience_identify-<change id>`) for those destinations that take identify,
so Mailchimp has the member before it tags them. An exit carries what the person *entered*
with, so the destination removes exactly the row it added.

- **full sync** (`sync(pipeline)`): evaluate every profile, write the member rows, route the
  events and record the sync, all in one outbox transaction. `crossdock audiences sync`, and
  the daemon on each audience's `schedule` (`add_sync_timers`).
- **on erasure** (`erased_exits`): `crossdock profiles delete` takes the person out of every
  audience in the transaction that erases them.
- **on change** (`watch_profiles(pipeline)`): an `AudienceWatch` registered with the
  pipeline (`Pipeline.watch`) so that, after the profile store resolves a message that may
  change attributes, that person is re-evaluated for every `sync_on_change` audience and the
  events are routed after the message: same transaction, and after the message's own rows (a
  Mailchimp member is upserted by the identify before the tag that follows it).
  `build_pipeline` registers it when the config has audiences.

Both run on a SQLite outbox and on a PostgreSQL outbox many daemons share. On PostgreSQL:

- **on change**, two daemons may process messages of one person at once. The profile store
  already holds that person's profile locks for the whole accept transaction (identity keys,
  then owning profiles: crossdock.profiles.store), so membership decisions about one person
  are taken by one transaction at a time, and the second reads what the first committed
  (READ COMMITTED: each statement sees the latest commits). The watch adds, after the store's
  locks and in the same `prepare` at the start of the batch, a *shared* advisory lock per
  watched audience: on-change updates of different people never wait for each other.
- a **full sync** writes every member row of its audiences, so it takes those audiences'
  locks *exclusively*, before it reads anything: it waits for the on-change transactions in
  flight, and attribute-changing accepts wait for it (for its one transaction). It holds no
  profile lock, and on-change transactions take audience locks only after all theirs, so the
  lock order (identities, profiles, audiences) has no cycle.
- **scheduled** syncs are fleet-once timers (crossdock.fleet): one daemon per interval wins
  the claim. A crontab schedule checks whether a fire time has passed since the last sync
  again under the exclusive lock, so a slow sync is never repeated by the next claimant.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from crossdock.audiences import membership
from crossdock.audiences.membership import Change, Plan
from crossdock.audiences.spec import AUDIENCE_ENTERED, AUDIENCE_EXITED, Audience, audiences_of
from crossdock.models import EnrichedMessage, Message, format_time
from crossdock.outbox.base import shared_sql
from crossdock.outbox.locks import is_postgres

if TYPE_CHECKING:
    from crossdock.pipeline import Pipeline
    from crossdock.profiles.store import ProfileStore
    from crossdock.scheduler import Scheduler

log = logging.getLogger("crossdock.audiences")

EVENTS = {"entered": AUDIENCE_ENTERED, "exited": AUDIENCE_EXITED}
#: how often a cron-scheduled audience checks whether its time has come
CRON_TICK_SECONDS = 60.0


@dataclass
class SyncReport:
    """What one full sync did."""

    evaluated: int = 0
    entered: dict[str, int] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)
    #: new outbox rows (one per change and destination that takes it)
    rows: int = 0

    def __str__(self) -> str:
        parts = [f"{name}: +{self.entered[name]} -{self.exited.get(name, 0)}"
                 for name in self.entered]
        return (f"evaluated {self.evaluated} profiles; " + "; ".join(parts)
                + f"; {self.rows} outbox rows")


def select(audiences: Sequence[Audience], names: Sequence[str] | None) -> list[Audience]:
    """The audiences named (all when None); KeyError naming an unknown one."""
    if not names:
        return list(audiences)
    known = {a.name: a for a in audiences}
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(f"unknown audience {', '.join(map(repr, missing))} "
                       f"(known: {', '.join(sorted(known)) or 'none configured'})")
    return [known[n] for n in names]


def apply_plan(db: Database, store: ProfileStore, audiences: Sequence[Audience], plan: Plan,
               now: float) -> list[EnrichedMessage]:
    """Write the plan's member rows and return its audience events, ready to route."""
    membership.apply_moves(db, plan)
    targets = {a.name: a.destinations for a in audiences}
    events: list[EnrichedMessage] = []
    for change in plan.changes:
        event = _event(db, store, change, now)
        snapshot = None
        if change.kind == "entered":
            snapshot = {"user_attributes": event.user_attributes,
                        "identities": event.identities, "consent": sorted(event.consent)}
        change_id = membership.apply(db, change, now, snapshot)
        event.message["messageId"] = f"{EVENTS[change.kind]}-{change_id}"
        event.destinations = targets[change.audience]
        if change.kind == "entered":
            events.append(_identify(event, change_id))
        events.append(event)
    return events


def _identify(event: EnrichedMessage, change_id: int) -> EnrichedMessage:
    """An identify with the person's current traits, routed just before their entry to the
    audience's destinations that take identify: a destination keyed by person (Mailchimp's
    members) then knows them before it is asked to tag them (docs/destinations/mailchimp.md)."""
    message = {key: value for key, value in event.message.items()
               if key not in ("event", "properties")}
    message.update(type="identify", messageId=f"audience_identify-{change_id}",
                   traits=dict(event.user_attributes))
    return EnrichedMessage(message=message, profile_id=event.profile_id,
                           user_attributes=event.user_attributes,
                           identities=event.identities, consent=event.consent,
                           destinations=event.destinations)


def _event(db: Database, store: ProfileStore, change: Change, now: float) -> EnrichedMessage:
    message: dict[str, Any] = {
        "type": "track",
        "event": EVENTS[change.kind],
        "messageId": "",
        "timestamp": format_time(now),
        "properties": {"audience": change.audience},
        "context": {"crossdock": {"audience": change.audience}},
        "integrations": {},
    }
    if change.kind == "entered":
        enriched = store.enrich(db, change.profile_id, message)
    else:
        snap = change.snapshot or {}
        consent = set(snap.get("consent") or [])
        if not change.deleted:
            # Leaving is never held back by a consent withdrawn since entering.
            consent |= store.consent(db, change.profile_id)
        enriched = EnrichedMessage(
            message=message, profile_id=change.profile_id,
            user_attributes=dict(snap.get("user_attributes") or {}),
            identities=dict(snap.get("identities") or {}), consent=consent,
        )
    for key in ("userId", "anonymousId"):
        if enriched.identities.get(key):
            message[key] = enriched.identities[key]
    return enriched


def plan_sync(db: Database, audiences: Sequence[Audience]) -> Plan:
    """What a full sync of `audiences` would change now (`crossdock audiences preview`)."""
    return membership.plan(db, audiences, None)


def sync(pipeline: Pipeline[ProfileStore], names: Sequence[str] | None = None, *,
         audiences: Sequence[Audience] | None = None, now: float | None = None) -> SyncReport:
    """Full sync of the named audiences (all when None) in one outbox transaction: evaluate
    every profile, write member rows, route the events, record the sync."""
    report = sync_if(pipeline, names, audiences=audiences, now=now)
    assert report is not None
    return report


def sync_if(pipeline: Pipeline[ProfileStore], names: Sequence[str] | None = None, *,
            audiences: Sequence[Audience] | None = None, now: float | None = None,
            due: Callable[[Database], bool] | None = None) -> SyncReport | None:
    """`sync`, but when `due(db)` is given it is asked first, inside the transaction and under
    the audiences' exclusive locks; None when it says no (nothing written)."""
    store = pipeline.profiles
    if store is None:
        raise RuntimeError("audiences need the profile store, and this outbox has none")
    chosen = select(audiences if audiences is not None
                    else audiences_of(pipeline.loaded.config), names)
    report = SyncReport()
    with pipeline.outbox.transaction() as tx:
        db = shared_sql(tx)
        membership.upgrade_audiences(db)
        membership.lock_audiences(db, [a.name for a in chosen], shared=False)
        if due is not None and not due(db):
            return None
        now = store.clock() if now is None else now
        plan = membership.plan(db, chosen, None)
        events = apply_plan(db, store, chosen, plan, now)
        report.rows = pipeline.accept_enriched(events) if events else 0
        report.evaluated = plan.evaluated
        for audience in chosen:
            entered, exited = plan.count(audience.name, "entered"), plan.count(
                audience.name, "exited")
            report.entered[audience.name], report.exited[audience.name] = entered, exited
            membership.record_sync(db, audience.name, now, entered, exited)
            if audience.type_errors:
                log.warning("audience %s: the condition failed on %d profiles (wrong "
                            "attribute types); they count as not members", audience.name,
                            audience.type_errors)
    log.info("audience sync: %s", report)
    return report


def erased_exits(pipeline: Pipeline[ProfileStore], db: Database, profile_ids: Sequence[str],
                 now: float | None = None) -> list[EnrichedMessage]:
    """The audience exits of people erased in this transaction (`crossdock profiles delete`:
    the profile and the profiles merged into it), written now and returned to be routed.

    Erasure is the moment a person asks to be forgotten, so every audience they are in lets
    them go at once, not at its next full sync (a day away on a daily schedule). The exits
    carry what the person entered with, like any exit. On PostgreSQL the audiences' shared
    locks are taken after the profile lock `ProfileStore.delete` holds: the on-change order."""
    store = pipeline.profiles
    audiences = audiences_of(pipeline.loaded.config)
    if store is None or not audiences or not profile_ids:
        return []
    membership.upgrade_audiences(db)
    membership.lock_audiences(db, [a.name for a in audiences], shared=True)
    plan = membership.plan(db, audiences, list(profile_ids))
    # An erased profile has no attributes left: a condition that holds for none (`not vip`)
    # must not make it enter again.
    plan.changes = [c for c in plan.changes if c.kind == "exited"]
    return apply_plan(db, store, audiences, plan, store.clock() if now is None else now)


def _may_change_attributes(message: Message) -> bool:
    """Messages that can change a profile's attributes: traits, or ids that may merge."""
    if message.type in ("identify", "alias"):
        return True
    if message.context.get("traits"):
        return True
    return bool(message.user_id and message.anonymous_id)


class AudienceWatch:
    """The on-change sync, a `crossdock.pipeline.ProfileWatcher`: after the profile store
    resolves a message that may change attributes, its person is re-evaluated for the
    watched audiences and the audience events are routed after the message."""

    #: re-evaluating a person reads their attributes as the message left them
    reads_profiles = True

    def __init__(self, store: ProfileStore, audiences: Sequence[Audience]) -> None:
        self.store = store
        self.audiences = list(audiences)
        #: transactions (their handles) holding the watched audiences' shared locks
        self._locked: weakref.WeakSet[Database] = weakref.WeakSet()

    def prepare(self, db: Database, messages: list[Message]) -> None:
        """At the start of an accept transaction, after the store's locks (identities, then
        profiles): if a message may change attributes, the shared locks of the watched
        audiences (PostgreSQL; see the module docstring)."""
        if any(_may_change_attributes(m) for m in messages):
            self._lock(db)

    def _lock(self, db: Database) -> None:
        if is_postgres(db) and db not in self._locked:
            membership.lock_audiences(db, [a.name for a in self.audiences], shared=True)
            self._locked.add(db)

    def resolved(self, db: Database, message: Message,
                 enriched: list[EnrichedMessage]) -> list[EnrichedMessage]:
        if not enriched or not _may_change_attributes(message):
            return []
        # Taken in `prepare` already (held locks are not taken twice); here too so that the
        # lock never depends on the caller having prepared.
        self._lock(db)
        profile_id = enriched[-1].profile_id
        if profile_id is None:
            return []
        plan = membership.plan(db, self.audiences, [profile_id])
        if not (plan.changes or plan.rekeys or plan.drops):
            return []
        return apply_plan(db, self.store, self.audiences, plan, self.store.clock())

    def finish(self, db: Database) -> None:
        """Nothing: every plan was applied in `resolved`."""


def watch_profiles(pipeline: Pipeline[ProfileStore]) -> AudienceWatch | None:
    """Register the on-change sync with the pipeline when some audience wants it and the
    pipeline has a profile store; returns the watch registered (None: none)."""
    watched = [a for a in audiences_of(pipeline.loaded.config) if a.config.sync_on_change]
    if not watched or pipeline.profiles is None:
        return None
    watch = AudienceWatch(pipeline.profiles, watched)
    pipeline.watch(watch)
    return watch


def sync_timer(pipeline: Pipeline[ProfileStore], audience: Audience,
               clock: Callable[[], float] = time.time) -> tuple[float, Callable[[], Any]]:
    """(interval, coroutine function) for `Scheduler.add_timer`: an interval schedule syncs
    on every tick; a crontab schedule ticks every minute and syncs when a fire time has
    passed since the last sync (recorded in audience_syncs, so a restart does not repeat it).
    """
    schedule = audience.schedule
    assert schedule is not None
    names = [audience.name]

    def run_sync() -> SyncReport:
        return sync(pipeline, names, audiences=[audience])

    if schedule.seconds is not None:
        async def every() -> SyncReport:
            return await asyncio.to_thread(run_sync)

        return schedule.seconds, every
    started = clock()

    def due(db: Database) -> bool:
        last = membership.last_sync(db, audience.name)
        return schedule.next_after(started if last is None else last) <= clock()

    def due_now() -> bool:
        with pipeline.outbox.transaction() as tx:
            return due(shared_sql(tx))

    def run_if_due() -> SyncReport | None:
        # Asked again under the audience's exclusive lock: another daemon's sync of this
        # fire time may have committed since.
        return sync_if(pipeline, names, audiences=[audience], due=due)

    async def cron() -> SyncReport | None:
        if await asyncio.to_thread(due_now):
            return await asyncio.to_thread(run_if_due)
        return None

    return CRON_TICK_SECONDS, cron


def add_sync_timers(scheduler: Scheduler, pipeline: Pipeline[ProfileStore],
                    clock: Callable[[], float] = time.time) -> list[str]:
    """Add a fleet-once timer `audience-sync:<name>` per scheduled audience; returns names."""
    added: list[str] = []
    for audience in audiences_of(pipeline.loaded.config):
        if audience.config.schedule is None:
            continue
        seconds, fn = sync_timer(pipeline, audience, clock)
        name = f"audience-sync:{audience.name}"
        scheduler.add_timer(name, seconds, fn, fleet_once=True)
        added.append(name)
    return added
