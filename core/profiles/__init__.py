"""Step 2 of a message's way: one profile per person (docs/profiles.md).

    store = ProfileStore(loaded.config.profiles, db=outbox.db)   # SQLite
    store = ProfileStore(loaded.config.profiles)                 # PostgreSQL
    pipeline = Pipeline(loaded, outbox, profiles=store)

`make_profile_hook(loaded, outbox)` is what `crossdock.pipeline.build_pipeline` looks for.
`sweep_and_route(pipeline, store, now)` ends idle sessions and routes their session_end events
in one transaction; the daemon runs it on a timer (`session_timer`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from crossdock.config import LoadedConfig
from crossdock.models import EnrichedMessage
from crossdock.outbox import Outbox, is_sqlite
from crossdock.outbox.base import shared_sql
from crossdock.outbox.copy import StoreTables
from crossdock.profiles.store import Deleted, ProfileStore

if TYPE_CHECKING:
    from crossdock.pipeline import Pipeline

__all__ = [
    "PROFILE_TABLES",
    "Deleted",
    "ProfileStore",
    "make_profile_hook",
    "route_enriched",
    "session_timer",
    "sweep_and_route",
]


#: The profile store's tables, copied whole by `crossdock db copy` (the same columns on both
#: engines: crossdock.profiles.migrations, pg_004_profiles, pg_009_attribute_definitions).
#: Its migrations make the dedup window's table too, as the store's own do.
PROFILE_TABLES = StoreTables(
    ("profiles", "profile_identities", "profile_system_attributes",
     "profile_custom_attributes", "profile_consent", "profile_sessions", "profile_merges",
     "profile_rejections", "profile_stats", "profile_attribute_definitions"),
    migrate=lambda db: ProfileStore().migrate(db),
    numbered=("profile_sessions", "profile_merges", "profile_rejections"),
    own_rows=(("profiles", "id"),),
)


def make_profile_hook(loaded: LoadedConfig, outbox: Outbox) -> ProfileStore:
    """The profile store for a pipeline, in the outbox's own database: the SQLite file
    (tables created here) or PostgreSQL (tables created by the outbox's migrations)."""
    if is_sqlite(outbox):
        return ProfileStore(loaded.config.profiles, db=outbox.db)
    return ProfileStore(loaded.config.profiles)


def route_enriched(pipeline: Pipeline[ProfileStore], enriched: Sequence[EnrichedMessage]) -> int:
    """Route already-enriched messages (system events) through `pipeline.accept_enriched`;
    returns how many outbox rows were new. Joins an open outbox transaction."""
    return pipeline.accept_enriched(list(enriched))


def sweep_and_route(pipeline: Pipeline[ProfileStore], store: ProfileStore,
                    now: float | None = None) -> int:
    """End the sessions idle for the session timeout and route their session_end events, all
    in one transaction; returns how many sessions ended."""
    with pipeline.outbox.transaction() as tx:
        db = shared_sql(tx)
        events = store.sweep_sessions(db, now)
        route_enriched(pipeline, events)
        store.purge(db, now)
    return len(events)


def session_timer(
    pipeline: Pipeline[ProfileStore], store: ProfileStore, clock: Callable[[], float] = time.time
) -> Callable[[], Awaitable[int]]:
    """A coroutine function for `Scheduler.add_timer("session-sweep", 60, ...)`."""
    import asyncio

    async def run() -> int:
        return await asyncio.to_thread(sweep_and_route, pipeline, store, clock())

    return run
