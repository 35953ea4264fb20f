"""The daemons sharing one outbox: who is connected, and timers that run once across them.

    fleet = fleet_for(outbox)                   # PostgresFleet or LocalFleet (SQLite)
    fleet.daemons()                             # for `crossdock status`
    fleet.claim("cleanup", 3600, owner)         # True for exactly one daemon per interval

    member = FleetMember(outbox, engine.owner, ["slack", ...])
    await member.start(engine.wake)             # register, heartbeat, LISTEN for new rows
    await member.stop()                         # mark stopped, end the background tasks

On PostgreSQL every daemon registers a row in `fleet_daemons` and refreshes its heartbeat;
one that misses `stale_after` seconds of heartbeats is shown as lost (SIGKILLed, or its
machine gone). A timer that must run once across the fleet (cleanup, session sweeps,
audience syncs) is claimed in `fleet_timers` with one upsert whose WHERE only lets it through
when no daemon has run it in the last 90% of its interval: whichever daemon's timer fires first
runs it, and when that daemon dies the next one simply wins the next claim. (A row rather than
pg_try_advisory_lock: a lock only says "someone is running it now", not "it ran a minute ago",
and advisory locks are shared by every schema of the database.)

With SQLite there is one machine and, normally, one daemon: `LocalFleet` claims everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from crossdock import __version__
from crossdock.outbox import Outbox, is_postgres

if TYPE_CHECKING:
    from crossdock.outbox.postgres import PostgresOutbox

log = logging.getLogger("crossdock.fleet")

HEARTBEAT_SECONDS = 5.0
#: a daemon whose last heartbeat is older than this is shown as lost
STALE_AFTER = 30.0
#: a fleet-once timer runs when nobody ran it in this share of its interval
CLAIM_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """One daemon as `crossdock status` shows it."""

    owner: str
    host: str
    pid: int
    version: str
    destinations: list[str]
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    #: outbox rows this daemon holds under a lease right now
    leased: int
    state: str  # running | lost | stopped


class Fleet(Protocol):
    def register(self, owner: str, destinations: Sequence[str],
                 now: float | None = None) -> None: ...

    def heartbeat(self, owner: str, now: float | None = None) -> None: ...

    def stopped(self, owner: str, now: float | None = None) -> None: ...

    def claim(self, timer: str, interval: float, owner: str,
              now: float | None = None) -> bool: ...

    def daemons(self, now: float | None = None) -> list[DaemonInfo]: ...


class LocalFleet:
    """One machine (the SQLite outbox): every timer is this daemon's to run."""

    def register(self, owner: str, destinations: Sequence[str],
                 now: float | None = None) -> None:
        return None

    def heartbeat(self, owner: str, now: float | None = None) -> None:
        return None

    def stopped(self, owner: str, now: float | None = None) -> None:
        return None

    def claim(self, timer: str, interval: float, owner: str,
              now: float | None = None) -> bool:
        return True

    def daemons(self, now: float | None = None) -> list[DaemonInfo]:
        return []


class PostgresFleet:
    """The registry and timer claims in the PostgreSQL outbox's own tables."""

    def __init__(self, outbox: PostgresOutbox, *, stale_after: float = STALE_AFTER) -> None:
        self.outbox = outbox
        self.stale_after = stale_after

    def register(self, owner: str, destinations: Sequence[str],
                 now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.outbox.transaction() as tx:
            tx.conn.execute(
                """
                INSERT INTO fleet_daemons (owner, host, pid, version, destinations,
                                           started_at, heartbeat_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                    stopped_at = NULL, destinations = excluded.destinations
                """,
                [owner, socket.gethostname(), os.getpid(), __version__,
                 ",".join(destinations), now, now],
            )

    def heartbeat(self, owner: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.outbox.transaction() as tx:
            tx.conn.execute("UPDATE fleet_daemons SET heartbeat_at = %s WHERE owner = %s",
                            [now, owner])

    def stopped(self, owner: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.outbox.transaction() as tx:
            tx.conn.execute("UPDATE fleet_daemons SET stopped_at = %s, heartbeat_at = %s "
                            "WHERE owner = %s", [now, now, owner])

    def claim(self, timer: str, interval: float, owner: str,
              now: float | None = None) -> bool:
        """True if this daemon should run `timer` now: nobody ran it in the last 90% of
        `interval`. Two daemons claiming at once: the row lock orders them, and the second
        sees the first's run and gets False."""
        now = time.time() if now is None else now
        with self.outbox.transaction() as tx:
            row = tx.conn.execute(
                """
                INSERT INTO fleet_timers (name, owner, last_run_at) VALUES (%s, %s, %s)
                ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                    last_run_at = excluded.last_run_at
                WHERE fleet_timers.last_run_at <= excluded.last_run_at - %s
                RETURNING name
                """,
                [timer, owner, now, interval * CLAIM_SHARE],
            ).fetchone()
        return row is not None

    def daemons(self, now: float | None = None) -> list[DaemonInfo]:
        """Every daemon that registered, newest first, with what it holds; daemons stopped
        (or lost) for more than a day are left out."""
        now = time.time() if now is None else now
        with self.outbox.transaction() as tx:
            rows = tx.conn.execute(
                """
                SELECT d.owner, d.host, d.pid, d.version, d.destinations, d.started_at,
                       d.heartbeat_at, d.stopped_at,
                       (SELECT COUNT(*) FROM outbox o
                        WHERE o.state = 'leased'
                          AND split_part(o.lease_owner, '#', 1) = d.owner
                          AND o.lease_expires_at > %s)
                FROM fleet_daemons d WHERE d.heartbeat_at > %s
                ORDER BY d.started_at DESC, d.owner
                """,
                [now, now - 86400],
            ).fetchall()
        result = []
        for owner, host, pid, version, dests, started, beat, stopped, leased in rows:
            if stopped is not None:
                state = "stopped"
            elif now - beat > self.stale_after:
                state = "lost"
            else:
                state = "running"
            result.append(DaemonInfo(owner, host, pid, version,
                                     [d for d in dests.split(",") if d], started, beat,
                                     stopped, int(leased), state))
        return result


def fleet_for(outbox: Outbox) -> Fleet:
    """The fleet of daemons sharing `outbox`."""
    if is_postgres(outbox):
        return PostgresFleet(outbox)
    return LocalFleet()


class FleetMember:
    """This daemon's membership: registration, heartbeats and (on PostgreSQL) the LISTEN
    wake-up. Database calls run in a thread so the event loop never waits on them."""

    def __init__(self, outbox: Outbox, owner: str, destinations: Sequence[str], *,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.outbox = outbox
        self.owner = owner
        self.destinations = list(destinations)
        self.fleet = fleet_for(outbox)
        self.heartbeat_seconds = heartbeat_seconds
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, wake: Callable[[str], Any] | None = None) -> None:
        """Register, start heartbeating, and given `wake`, call `wake(dest)` whenever any
        process commits new rows for a destination (`Outbox.listen`: PostgreSQL)."""
        await asyncio.to_thread(self.fleet.register, self.owner, self.destinations)
        self._tasks.append(asyncio.create_task(self._beat(), name="crossdock-heartbeat"))
        if wake is not None:
            self._tasks.append(asyncio.create_task(self.outbox.listen(wake),
                                                   name="crossdock-listen"))

    async def serve(self, destinations: Sequence[str]) -> None:
        """The daemon now delivers `destinations` (a SIGHUP reload): `crossdock status`
        shows them."""
        self.destinations = list(destinations)
        await asyncio.to_thread(self.fleet.register, self.owner, self.destinations)

    def once(self, name: str, seconds: float,
             fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """`fn` wrapped to run only when this daemon wins the fleet-wide claim for `name`
        (for Scheduler.add_timer)."""

        async def run() -> Any:
            if await asyncio.to_thread(self.fleet.claim, name, seconds, self.owner):
                return await fn()
            return None

        return run

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await asyncio.to_thread(self.fleet.heartbeat, self.owner)
            except Exception:  # a missed beat only makes status show us late
                log.warning("heartbeat failed", exc_info=True)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.fleet.stopped, self.owner)
