"""Step 5: the delivery engine, all I/O of every destination in one place.

    DeliveryEngine(loaded, outbox).start()   one worker per enabled destination, until stop()
    engine.wake("slack-alerts")              new rows committed: lease now, not at the next poll
    await deliver_once(loaded, outbox)       drain what is due now and return (cron);
                                             bounded by time, items and destinations

See worker.py for one destination's loop, backoff.py and ratelimit.py for the timing rules,
tokens.py for the OAuth2 access tokens of destinations that declare a grant,
transport.py for the HTTP clients (each destination's guards egress and caps what it reads of
an answer), senders.py for the other send kinds (files), and docs/delivery.md for outcomes and
tuning.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence

import httpx

from crossdock.config import ConfiguredDestination, LoadedConfig
from crossdock.delivery.observer import DeliveryObserver
from crossdock.delivery.senders import Senders
from crossdock.delivery.tokens import Tokens
from crossdock.delivery.transport import make_client
from crossdock.delivery.worker import (
    Clock,
    DeliveryReport,
    DestinationReport,
    DestinationWorker,
    DrainBound,
    Sleep,
    default_owner,
)
from crossdock.outbox.base import Outbox

__all__ = [
    "DeliveryEngine",
    "DeliveryReport",
    "DestinationReport",
    "DestinationWorker",
    "DrainBound",
    "deliver_once",
    "make_client",
]

log = logging.getLogger("crossdock.delivery")


class DeliveryEngine:
    """Delivery workers for every enabled destination of a config.

    `clock` (epoch seconds), `rng` and `sleep` are injectable so tests can assert exact retry
    times and rate-limit spacing. The engine makes an `httpx.AsyncClient` per destination
    (`make_client`, aiohttp transport) from its delivery settings: the egress guard unless
    `delivery.allow_private_network`, and `max_response_bytes`; it closes them on stop. A
    `client` passed in is used for every destination as it is (a test's MockTransport, or a
    `make_client` of the caller's choosing), and the caller closes it.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        outbox: Outbox,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        poll_interval: float = 0.5,
        owner: str | None = None,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.loaded = loaded
        #: every worker's requests and settled tries are told to it (crossdock.metrics)
        self.observer = observer
        self.outbox = outbox
        self.clock = clock
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.owner = owner or default_owner()
        self._client = client
        #: OAuth2 access tokens, one per grant for every worker, shared through the outbox
        #: with the other daemons on it (tokens.py)
        self.tokens = Tokens(outbox, clock=clock)
        self._own_clients: dict[str, httpx.AsyncClient] = {}
        self.workers: dict[str, DestinationWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._senders: Senders | None = None

    def _ensure_workers(self) -> None:
        if self.workers:
            return
        for destination in self.loaded.destinations:
            self.workers[destination.name] = self._worker(destination)

    def _worker(self, destination: ConfiguredDestination) -> DestinationWorker:
        if self._senders is None:
            self._senders = Senders.default()
        return DestinationWorker(
            destination, self.outbox, self._client or self._own_client(destination),
            owner=self.owner, clock=self.clock, rng=self.rng, sleep=self.sleep,
            poll_interval=self.poll_interval, senders=self._senders, tokens=self.tokens,
            observer=self.observer,
        )

    def _own_client(self, destination: ConfiguredDestination) -> httpx.AsyncClient:
        """A destination's own client: its egress policy and response limit hold for every
        request it sends, and nothing it opted into reaches another destination (a pooled
        connection to a private address is never reused by one that did not opt in)."""
        delivery = destination.config.delivery
        client = make_client(max_connections=max(100, destination.concurrency),
                             allow_private_network=delivery.allow_private_network,
                             max_response_bytes=destination.max_response_bytes)
        self._own_clients[destination.name] = client
        return client

    @property
    def report(self) -> DeliveryReport:
        """Everything delivered, retried and dead since the engine was made."""
        return DeliveryReport({name: w.report for name, w in self.workers.items()})

    async def drain(self, bound: DrainBound | None = None) -> DeliveryReport:
        """Deliver what is due now for every destination, concurrently; then return (early
        when `bound` says so)."""
        self._ensure_workers()
        names = list(self.workers)
        reports = await asyncio.gather(*(self.workers[n].drain(bound) for n in names))
        return DeliveryReport(dict(zip(names, reports, strict=True)))

    async def start(self) -> None:
        """Start every destination's worker in the background."""
        if self._tasks:
            return
        self._loop = asyncio.get_running_loop()
        self._ensure_workers()
        for name, worker in self.workers.items():
            self._serve(name, worker)
        log.info("delivery started for %d destinations (owner %s)", len(self.workers),
                 self.owner)

    def _serve(self, name: str, worker: DestinationWorker) -> None:
        task = asyncio.create_task(worker.serve(), name=f"crossdock-deliver-{name}")
        task.add_done_callback(self._worker_ended)
        self._tasks[name] = task

    async def reconfigure(self, loaded: LoadedConfig) -> dict[str, list[str]]:
        """Apply a reloaded config's destinations (SIGHUP) while running. An unchanged
        destination's worker goes on untouched; a removed or changed one stops leasing,
        finishes and settles the batches in hand (their leases held, heartbeat and all, to
        the end: nothing is released or sent twice), and a changed one then starts again on
        its new settings, as does a new one. Returns the names by change."""
        old = {d.name: d for d in self.loaded.destinations}
        new = {d.name: d for d in loaded.destinations}
        changes: dict[str, list[str]] = {"added": [], "changed": [], "removed": [],
                                         "unchanged": []}
        for name in old.keys() | new.keys():
            if name not in new:
                changes["removed"].append(name)
            elif name not in old:
                changes["added"].append(name)
            elif (old[name].config != new[name].config
                  or old[name].function_fingerprint != new[name].function_fingerprint):
                changes["changed"].append(name)
            else:
                changes["unchanged"].append(name)
        for names in changes.values():
            names.sort()
        ending = changes["removed"] + changes["changed"]
        for name in ending:
            self.workers[name].stop()
        await asyncio.gather(*(self._tasks.pop(n) for n in ending if n in self._tasks),
                             return_exceptions=True)
        for name in ending:
            del self.workers[name]
            client = self._own_clients.pop(name, None)
            if client is not None:
                await client.aclose()
        self.loaded = loaded
        for name in changes["added"] + changes["changed"]:
            self.workers[name] = self._worker(new[name])
            if self._loop is not None:
                self._serve(name, self.workers[name])
        return changes

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery worker %s ended: %r", task.get_name(), task.exception())

    def stopped_workers(self) -> list[str]:
        """Destinations whose worker task has ended while the engine runs (a bug: a worker
        never lets an exception out of its loop), for the ops listener's /readyz."""
        return sorted(name for name, task in self._tasks.items() if task.done())

    def wake(self, destination: str | None = None) -> None:
        """New rows are due (for one destination, or all): lease now. Safe from any thread."""
        workers = (list(self.workers.values()) if destination is None
                   else [w for n, w in self.workers.items() if n == destination])
        loop = self._loop
        for worker in workers:
            if loop is None or _running_loop() is loop:
                worker.wake()
            else:
                loop.call_soon_threadsafe(worker.wake)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop leasing; let in-flight batches finish for up to `grace` seconds, then cancel
        them (their leases are released back to the queue); close the HTTP client."""
        for worker in self.workers.values():
            worker.stop()
        if self._tasks:
            tasks = list(self._tasks.values())
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks = {}
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._own_clients = self._own_clients, {}
        for client in clients.values():
            await client.aclose()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def deliver_once(
    loaded: LoadedConfig,
    outbox: Outbox,
    *,
    client: httpx.AsyncClient | None = None,
    clock: Clock = time.time,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
    bound: DrainBound | None = None,
    destinations: Sequence[str] | None = None,
    progress: Callable[[DeliveryReport], None] | None = None,
    progress_every: float = 5.0,
) -> DeliveryReport:
    """Deliver everything due now for every enabled destination (or the named
    `destinations`), then return what happened (`crossdock deliver --once`).

    `bound` ends the drain early (a deadline on `clock`, a number of items). `progress` is
    called with what has been settled so far every `progress_every` seconds of real time,
    so a long drain is never silent."""
    if destinations is not None:
        wanted = set(destinations)
        loaded = dataclasses.replace(
            loaded, destinations=[d for d in loaded.destinations if d.name in wanted])
    engine = DeliveryEngine(loaded, outbox, client=client, clock=clock, rng=rng, sleep=sleep)
    ticker = (asyncio.create_task(_report_progress(engine, progress, progress_every))
              if progress is not None else None)
    try:
        return await engine.drain(bound)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await engine.aclose()


async def _report_progress(engine: DeliveryEngine, progress: Callable[[DeliveryReport], None],
                           every: float) -> None:
    while True:
        await asyncio.sleep(every)
        progress(engine.report)
