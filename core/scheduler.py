"""Timers of the daemon, on APScheduler's AsyncIOScheduler (in the daemon's event loop).

Built in:
- `due-sweep` (every second): wake the delivery worker of each destination whose earliest
  retry, or an abandoned lease, is due now, instead of waiting for its poll;
- `cleanup` (hourly): forget kept messages older than outbox.keep_messages, and delivered
  rows older than outbox.delivered_retention (their count
  is kept for `crossdock status`).

Others add theirs with `add_timer(name, seconds, coro_fn)` (session sweeps, audience syncs).
A timer that raises is logged and runs again at its next time; runs of one timer never overlap.
With `fleet_once=True` (cleanup, session sweeps, audience syncs) and a `once` wrapper from
crossdock.fleet.FleetMember, the timer runs on one daemon of the fleet per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from crossdock.config import LoadedConfig
from crossdock.outbox.base import Outbox

log = logging.getLogger("crossdock.scheduler")

TimerFn = Callable[[], Awaitable[Any]]


class Waker(Protocol):
    """What the scheduler needs of the delivery engine."""

    def wake(self, destination: str | None = None) -> None: ...


class Scheduler:
    """The daemon's timers; `start()` inside the running event loop, `shutdown()` to stop."""

    def __init__(
        self,
        loaded: LoadedConfig,
        outbox: Outbox,
        engine: Waker | None = None,
        *,
        clock: Callable[[], float] = time.time,
        due_sweep_seconds: float = 1.0,
        cleanup_seconds: float = 3600.0,
        once: Callable[[str, float, TimerFn], TimerFn] | None = None,
    ) -> None:
        self.loaded = loaded
        self.outbox = outbox
        self.engine = engine
        self.clock = clock
        self._scheduler = AsyncIOScheduler()
        self.timers: dict[str, float] = {}
        self._once = once
        self.add_timer("due-sweep", due_sweep_seconds, self.sweep_due)
        self.add_timer("cleanup", cleanup_seconds, self.cleanup, fleet_once=True)

    def add_timer(self, name: str, seconds: float, coro_fn: TimerFn, *,
                  fleet_once: bool = False) -> None:
        """Run `await coro_fn()` every `seconds` (first run one interval from now); with
        `fleet_once`, only on the daemon that wins the fleet-wide claim for that run."""
        if name in self.timers:
            raise ValueError(f"a timer named {name!r} already exists")
        if fleet_once and self._once is not None:
            coro_fn = self._once(name, seconds, coro_fn)

        async def run() -> None:
            try:
                await coro_fn()
            except Exception:
                log.exception("timer %s failed; it runs again in %gs", name, seconds)

        self._scheduler.add_job(run, "interval", seconds=seconds, id=name, name=name,
                                max_instances=1, coalesce=True)
        self.timers[name] = seconds

    async def sweep_due(self) -> list[str]:
        """Wake each destination with a row due now; returns their names."""
        now = self.clock()
        due = []
        for destination in self.loaded.destinations:
            at = self.outbox.next_due(destination.name)
            if at is not None and at <= now:
                due.append(destination.name)
                if self.engine is not None:
                    self.engine.wake(destination.name)
        return due

    async def cleanup(self) -> int:
        """Forget delivered rows past the retention; returns how many. In a thread: it runs
        in many short transactions (and gives the space back), and the collector and the
        workers on this loop go on between them."""
        retention = self.loaded.config.outbox.delivered_retention
        forgotten = await asyncio.to_thread(self.outbox.cleanup, self.clock() - retention)
        if forgotten:
            log.info("cleanup: forgot %d delivered rows older than %gs", forgotten, retention)
        keep = self.loaded.config.outbox.keep_messages
        dropped = await asyncio.to_thread(self.outbox.forget_kept, self.clock() - keep)
        if dropped:
            log.info("cleanup: forgot %d kept messages older than %gs", dropped, keep)
        return forgotten

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
