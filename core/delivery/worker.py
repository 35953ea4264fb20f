"""Step 5: deliver leased outbox rows of one destination, and settle each item's fate.

    lease (batch_size rows) -> [transform (transform.py)] -> plugin.build_requests
      -> rate limiter (per rate key) -> send with a timeout -> plugin.classify
      -> ack / retry later / dead letter

Each destination runs `concurrency` slots; a slot leases one batch, sends its requests one
after another and settles the batch in one transaction, so at most `concurrency` requests of a
destination are in flight. Whatever a plugin or the network does, the worker turns it into an
outcome for every leased item; it never lets an exception end the loop.

Every lease has a token of its own (the engine's owner name, "#", a sequence number), and
every settle is guarded by it; a heartbeat extends the batch's leases while it is in flight.
The destination's circuit (circuit.py) decides whether a slot leases a batch, one probe row,
or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from crossdock.config import HEARTBEATS_PER_LEASE, ConfiguredDestination
from crossdock.delivery.backoff import retry_delay
from crossdock.delivery.circuit import CircuitBreaker, Gate, Verdict
from crossdock.delivery.deadline import Deadline
from crossdock.delivery.observer import DeliveryObserver, Settled
from crossdock.delivery.ratelimit import FleetRateLimiter
from crossdock.delivery.senders import Senders
from crossdock.delivery.sending import SendOptions, SendRefused
from crossdock.delivery.tokens import (
    Token,
    TokenError,
    Tokens,
    authorize,
    describe_fetch_error,
    hide,
)
from crossdock.delivery.transform import FunctionStep, TransformStep
from crossdock.delivery.transport import send
from crossdock.destination import (
    MAX_FOLLOW_UPS,
    Delivered,
    Failed,
    FieldRefused,
    FollowUp,
    ItemRejected,
    OutboxItem,
    Outcome,
    PlannedRequest,
    PlannedSend,
    Rejected,
    Retry,
    Window,
    json_content,
)
from crossdock.oauth import TokenGrant
from crossdock.outbox.base import Outbox, Settlement

log = logging.getLogger("crossdock.delivery")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# Tuples, not `Delivered | Retry | Failed`, which builds a union at every isinstance.
_OUTCOMES = (Delivered, Retry, Failed)
_PLANNED = (PlannedRequest, PlannedSend)
#: seconds between two looks at what waits for a windowed destination whose window is open
WINDOW_RECHECK = 1.0


@dataclass
class DestinationReport:
    """What happened to one destination's items."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    requests: int = 0
    last_error: str | None = None
    #: values plugins left out of requests (FieldRefused), by field name
    refused: dict[str, int] = field(default_factory=dict)
    #: rows acknowledged without a request, by reason (a transform returned null)
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, other: DestinationReport) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.requests += other.requests
        self.last_error = other.last_error or self.last_error
        for name, count in other.refused.items():
            self.refused[name] = self.refused.get(name, 0) + count
        for reason, count in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count


@dataclass
class DeliveryReport:
    """Per destination and in total: items delivered, retried later, dead; requests sent."""

    destinations: dict[str, DestinationReport] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return sum(r.delivered for r in self.destinations.values())

    @property
    def retried(self) -> int:
        return sum(r.retried for r in self.destinations.values())

    @property
    def dead(self) -> int:
        return sum(r.dead for r in self.destinations.values())

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.destinations.values())

    def __str__(self) -> str:
        lines = [f"delivered {self.delivered}, retry later {self.retried}, dead {self.dead} "
                 f"({self.requests} requests)"]
        for name, r in sorted(self.destinations.items()):
            line = (f"  {name}: delivered {r.delivered}, retry later {r.retried}, "
                    f"dead {r.dead} ({r.requests} requests)")
            if r.refused:
                line += "; values left out: " + ", ".join(
                    f"{f} {n}" for f, n in sorted(r.refused.items()))
            if r.last_error:
                line += f"; last error: {r.last_error}"
            lines.append(line)
        return "\n".join(lines)


@dataclass
class DrainBound:
    """How far a drain may go (`crossdock deliver --once --max-time/--limit`): until
    `deadline` on the engine's clock, and at most `limit` items leased, shared by every
    destination and slot of the drain. `stopped_by` says which bound ended it, if any."""

    deadline: float | None = None
    limit: int | None = None
    leased: int = 0
    stopped_by: str | None = None

    def allow(self, wanted: int, now: float) -> int:
        """How many items a slot may lease now (0: the drain is over for it)."""
        if self.deadline is not None and now >= self.deadline:
            self.stopped_by = self.stopped_by or "max-time"
            return 0
        if self.limit is None:
            return wanted
        allowed = max(0, min(wanted, self.limit - self.leased))
        if allowed == 0:
            self.stopped_by = self.stopped_by or "limit"
        return allowed

    def took(self, count: int) -> None:
        self.leased += count

    def past_deadline(self, now: float) -> bool:
        if self.deadline is not None and now >= self.deadline:
            self.stopped_by = self.stopped_by or "max-time"
            return True
        return False


def default_owner() -> str:
    """A lease owner name unique to this worker process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class _Batch:
    """Rows leased together under one owner token."""

    token: str
    items: list[OutboxItem]
    #: the circuit's probe: one row, sent alone while the circuit is open
    probe: bool = False
    #: rows the heartbeat found taken over by another worker: not sent, not settled
    lost: set[int] = field(default_factory=set)


class _Heartbeat:
    """Extends a batch's leases every lease/HEARTBEATS_PER_LEASE seconds while it is in
    flight, so a live worker's lease never expires under it however slow the destination.

    Paced by the event loop's own timer (real time) even when the engine runs on a manual
    clock: a test's clock that jumps hours must not make it beat in a tight loop; the new
    expiry is still reckoned on the engine's clock."""

    def __init__(self, worker: DestinationWorker, batch: _Batch) -> None:
        self.worker = worker
        self.batch = batch
        self.interval = worker.settings.lease / HEARTBEATS_PER_LEASE
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._beat)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        worker, batch = self.worker, self.batch
        ids = [item.id for item in batch.items if item.id not in batch.lost]
        try:
            held = worker.outbox.extend(ids, batch.token, worker.settings.lease,
                                        now=worker.clock())
        except Exception:
            log.exception("%s: could not extend %d leases; trying again in %gs",
                          worker.name, len(ids), self.interval)
        else:
            lost = set(ids) - held
            if lost:
                # Only when a beat came too late (the outbox was unreachable for a whole
                # lease): another worker has these rows now, and sends them itself.
                log.warning("%s: %d leased rows were taken over by another worker; they "
                            "are left to it", worker.name, len(lost))
                batch.lost |= lost
        if self._handle is not None:
            self.start()


class DestinationWorker:
    """Delivers one configured destination's outbox rows."""

    def __init__(
        self,
        destination: ConfiguredDestination,
        outbox: Outbox,
        client: httpx.AsyncClient,
        *,
        owner: str,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        poll_interval: float = 0.5,
        senders: Senders | None = None,
        tokens: Tokens | None = None,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.destination = destination
        #: told of every request and every settled try (the ops listener's /metrics)
        self.observer = observer
        self.name = destination.name
        self.plugin = destination.plugin
        self.settings = destination.config.delivery
        self.outbox = outbox
        self.client = client
        self.owner = owner
        self.clock = clock
        self.rng = rng or random.Random()
        self.poll_interval = poll_interval
        self.limiter = FleetRateLimiter(destination.rate_limit, self.name, outbox.reserve_rate,
                                        clock=clock, sleep=sleep)
        self.circuit = CircuitBreaker(self.name, outbox, self.settings.circuit,
                                      probe_hold=self.settings.lease, clock=clock,
                                      rng=self.rng)
        #: who makes the plugin's non-HTTP sends (PlannedSend), by kind
        self.senders = senders if senders is not None else Senders.default()
        self.send_options = SendOptions(self.name, self.settings.allow_private_network)
        #: every HTTP request's deadline (the destination's timeout), on one timer
        self.deadline = Deadline(self.settings.timeout)
        #: OAuth2 tokens, shared by the engine's workers (and through the outbox by daemons)
        self.tokens = tokens if tokens is not None else Tokens(outbox, clock=clock)
        self.grant: TokenGrant | None = None
        #: why the plugin's grant could not be read (every request is retried with it)
        self.grant_error: str | None = None
        try:
            self.grant = self.plugin.token_grant()
        except Exception as exc:  # a plugin bug must not stop the engine
            self.grant_error = (f"plugin {self.plugin.plugin_name} token_grant failed: "
                                f"{_describe(exc)}")
        #: a destination writing files holds rows for a window and keeps each file's rows
        #: together (Destination.window(); docs/exports.md); None: batches as they come
        self.window = self.plugin.window()
        #: a windowed destination with nothing ready looks again no sooner than this
        self._window_check_at = -math.inf
        #: the destination's transformEvent, or its destination function (the plugin's
        #: script(): the `function` destination), run before build_requests
        #: (docs/functions.md)
        self.transform: TransformStep | None = None
        if destination.transform is not None:
            self.transform = TransformStep(self.name, destination.transform)
        elif destination.function is not None:
            self.transform = FunctionStep(self.name, *destination.function)
        self.report = DestinationReport()
        #: the destination's name on its log records (crossdock.logs)
        self._extra = {"destination": self.name}
        self._wake = asyncio.Event()
        self._stopping = False
        self._leases = itertools.count(1)
        #: the bound of the drain in progress: past its deadline, unsent items of a batch go
        #: back to the queue instead of waiting hours on the rate limit
        self._bound: DrainBound | None = None
        #: whether an operator paused the destination (Outbox.pause), and when that was last
        #: read (monotonic): read at most once a poll interval
        self._paused = False
        self._pause_read_at = -math.inf

    # -- running ------------------------------------------------------------------------

    async def drain(self, bound: DrainBound | None = None) -> DestinationReport:
        """Deliver every row due when called, then return (`crossdock deliver --once`).

        Rows retried during the drain come due later than its start, so they wait for the
        next run instead of being retried in a tight loop. While the destination's circuit
        is open only its probe is sent (when due). A `bound` ends the drain early: no lease
        after its deadline or beyond its limit, and what a batch has not sent by the deadline
        goes back to the queue unattempted."""
        start = self.clock()
        report = DestinationReport()
        self._bound = bound
        self._pause_read_at = -math.inf  # a drain obeys a pause made just before it
        try:
            await asyncio.gather(*(self._drain_slot(start, report, bound)
                                   for _ in range(self.destination.concurrency)))
        finally:
            self._bound = None
        return report

    async def _drain_slot(self, start: float, report: DestinationReport,
                          bound: DrainBound | None) -> None:
        while not self._stopping:
            size = self.destination.batch_size
            if bound is not None:
                size = bound.allow(size, self.clock())
                if size == 0:
                    return
            # Leasing "as of" the start keeps later retries out; the lease still lasts its
            # full length from now.
            lease_seconds = self.settings.lease + max(0.0, self.clock() - start)
            batch = self._lease(start, lease_seconds, size)
            if batch is None:
                return
            if bound is not None:
                bound.took(len(batch.items))
            report.add(await self.process(batch))

    async def serve(self) -> None:
        """Deliver until `stop()`: lease due rows, and when none are due wait for `wake()` or
        the poll interval (other processes add rows without waking us)."""
        await asyncio.gather(*(self._serve_slot() for _ in range(self.destination.concurrency)))

    async def _serve_slot(self) -> None:
        while not self._stopping:
            try:
                batch = self._lease(self.clock(), self.settings.lease)
                if batch is not None:
                    await self.process(batch)
                    continue
            except Exception:
                # e.g. the outbox file locked for longer than the busy timeout: the leases
                # in hand expire and are taken over, so waiting a poll interval is enough.
                log.exception("%s: outbox error; trying again", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            # Cleared before leasing again: rows committed before a later wake() are seen.
            self._wake.clear()

    def _lease(self, now: float, lease_seconds: float,
               size: int | None = None) -> _Batch | None:
        """The slot's next batch as the circuit allows (a batch while it is closed, one row
        when this worker holds the probe), under a token of its own; None when there is
        nothing to send now, or the destination is paused."""
        if self.paused():
            return None
        gate = self.circuit.gate()
        if gate is Gate.WAIT:
            return None
        probe = gate is Gate.PROBE
        token = f"{self.owner}#{next(self._leases)}"
        if self.window is not None:
            # A file is one send whether it is a probe or not: its rows go together (a
            # --limit does not cut a file).
            items = self._lease_window(self.window, token, now, lease_seconds)
        else:
            size = self.destination.batch_size if size is None else size
            items = self.outbox.lease(self.name, 1 if probe else size,
                                      lease_seconds, token, now=now,
                                      ordered=self.settings.ordered)
        if not items:
            if probe:
                self.circuit.unclaim()
            return None
        return _Batch(token, items, probe)

    def _lease_window(self, window: Window, token: str, now: float,
                      lease_seconds: float) -> list[OutboxItem]:
        """The rows of the next file of a windowed destination, leased and kept together
        under `token` before anything is sent; [] while its window is still open and
        neither max_rows nor max_bytes wait.

        A kept batch due again (its file failed, or its worker died mid-upload) comes
        first, whole, so its file is put again under the same name with exactly its rows.
        Otherwise the rows of the oldest window: once it has ended, or as soon as enough
        wait (leased without the per-person order: one file holds a person's rows in the
        order they were accepted)."""
        again = self.outbox.lease_batch(self.name, lease_seconds, token, now=now)
        if again:
            return again
        if self.clock() < self._window_check_at:
            return []
        waiting = self.outbox.waiting(self.name, window.max_rows, now=now)
        if waiting.oldest_created_at is None:
            return []
        end = window.start(waiting.oldest_created_at) + window.every
        full = waiting.rows >= window.max_rows or (
            window.max_bytes is not None and waiting.bytes >= window.max_bytes)
        if now < end and not full:
            # Until the window ends, look again only now and then: new rows wake the worker
            # often, and each look counts what waits.
            self._window_check_at = min(end, self.clock() + WINDOW_RECHECK)
            return []
        items = self.outbox.lease(self.name, window.max_rows, lease_seconds, token, now=now,
                                  ordered=False)
        if not items:
            return []
        start = min(window.start(item.created_at) for item in items)
        keep: list[OutboxItem] = []
        size = 0
        for item in items:
            if window.start(item.created_at) != start:
                continue
            if window.max_bytes is not None:
                size += len(json_content(item.payload))
                if keep and size > window.max_bytes:
                    break
            keep.append(item)
        kept = {item.id for item in keep}
        other = [item.id for item in items if item.id not in kept]
        if other:  # another window's rows, or more than max_bytes: for the next file
            self.outbox.release(other, token, now=now)
        self.outbox.keep_together(sorted(kept), token, token)
        return keep

    def paused(self) -> bool:
        """Whether an operator paused this destination (`Outbox.pause`). Read from the
        outbox at most once a poll interval, so every daemon of a fleet stops leasing within
        that; a batch in flight finishes."""
        now = time.monotonic()
        if now - self._pause_read_at >= self.poll_interval:
            self._pause_read_at = now
            paused = self.name in self.outbox.paused()
            if paused != self._paused:
                log.info("%s: delivery %s", self.name, "paused" if paused else "resumed",
                         extra=self._extra)
            self._paused = paused
        return self._paused

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop leasing; slots finish the batch in hand, then return."""
        self._stopping = True
        self._wake.set()

    # -- one batch ----------------------------------------------------------------------

    async def process(self, batch: _Batch) -> DestinationReport:
        """Send a leased batch and settle every item; never raises for plugin or network
        errors. Its leases are extended while it is in flight (the heartbeat). If cancelled,
        the unsettled items are released back to the queue."""
        settlement = Settlement()
        report = DestinationReport()
        heartbeat = _Heartbeat(self, batch)
        heartbeat.start()
        try:
            if self.transform is None:
                await self._send_all(batch, settlement, report)
            else:
                settlement = await self._transform_and_send(batch, report)
            if self.window is not None and len(settlement.retries) > 1:
                # A file's rows come due again together, so their batch is leased whole.
                due = max(at for _, at, _ in settlement.retries)
                settlement.retries = [(id_, due, error)
                                      for id_, _, error in settlement.retries]
        except asyncio.CancelledError:
            # Settling is synchronous, so a cancelled batch has settled nothing yet.
            self._release(batch)
            raise
        finally:
            heartbeat.stop()
        self._settle(batch, settlement, report)
        return report

    async def _transform_and_send(self, batch: _Batch,
                                  report: DestinationReport) -> Settlement:
        """The batch through the destination's transform (in a thread: operator code may
        take up to its time limit), the events it gives sent, their fates folded back into
        one per leased row; the counts reported are rows'."""
        assert self.transform is not None
        transformed = await asyncio.to_thread(self.transform.apply, batch.items)
        sent = Settlement()
        if transformed.items:
            await self._send_all(_Batch(batch.token, transformed.items, batch.probe,
                                        batch.lost), sent, report)
        settlement = transformed.fold(sent)
        report.delivered = len(settlement.acks) - len(transformed.dropped)
        report.retried = len(settlement.retries)
        report.dead = len(settlement.deads)
        if transformed.dropped:
            report.dropped[self.transform.dropped] = len(transformed.dropped)
        for _, reason in transformed.failed:
            report.last_error = reason
            log.warning("%s: %s", self.name, reason, extra=self._extra)
        return settlement

    async def _send_all(
        self, batch: _Batch, settlement: Settlement, report: DestinationReport
    ) -> None:
        items = batch.items
        covered: set[int] = set()  # items settled already: carried by no other request
        planned = self._plan(items, covered, settlement, report)
        refused: dict[str, list[FieldRefused]] = {}
        for entry in planned:
            if isinstance(entry, Rejected):
                covered.add(entry.item.id)
                self._judge(entry.item, Failed(f"rejected: {entry.reason}"), settlement, report)
                continue
            if isinstance(entry, FieldRefused):
                refused.setdefault(entry.field, []).append(entry)
                continue
            if not isinstance(entry, _PLANNED):
                error = (f"plugin {self.plugin.plugin_name} build_requests returned "
                         f"{type(entry).__name__}, not a PlannedRequest, PlannedSend, "
                         "Rejected or FieldRefused")
                log.warning("%s: %s", self.name, error)
                continue
            carried = [item for item in entry.items if item.id not in covered]
            covered.update(item.id for item in carried)
            if not carried:
                continue
            if batch.lost and batch.lost.intersection(item.id for item in carried):
                # Another worker has (some of) them now and sends them itself; the rest go
                # back to the queue rather than out in a request without their mates.
                settlement.releases += [i.id for i in carried if i.id not in batch.lost]
                continue
            if not batch.probe and not self.circuit.closed:
                # The circuit opened under this batch: what is not sent yet goes back to
                # the queue unattempted, in its order, for after the circuit closes.
                settlement.releases += [item.id for item in carried]
                continue
            if self._bound is not None and self._bound.past_deadline(self.clock()):
                # A bounded drain ran out of time: a cron run must end when it was told to,
                # not after the rest of the batch waited out the rate limit.
                settlement.releases += [item.id for item in carried]
                continue
            entry.items = carried
            if isinstance(entry, PlannedRequest):
                outcomes = await self._exchange(entry, report, batch.probe)
            else:
                report.requests += 1
                outcomes, verdict, error = await self._make_send(entry)
                self.circuit.record(verdict, error, probe=batch.probe)
            for item, outcome in zip(carried, outcomes, strict=True):
                self._judge(item, outcome, settlement, report)
        forgotten = [item for item in items if item.id not in covered]
        if forgotten:
            error = (f"plugin {self.plugin.plugin_name} build_requests returned no request "
                     "for this item")
            for item in forgotten:
                self._judge(item, Retry(error), settlement, report)
        for name, entries in refused.items():
            # One line per field and batch: a mapping that cannot fill a field for anyone
            # would otherwise log once per person.
            report.refused[name] = report.refused.get(name, 0) + len(entries)
            first = entries[0]
            log.warning("%s: %s left out of %d item(s), e.g. %s: %s", self.name, name,
                        len(entries), first.item.message_id, first.reason)

    def _plan(
        self, items: Sequence[OutboxItem], covered: set[int], settlement: Settlement,
        report: DestinationReport,
    ) -> list[Any]:
        """The plugin's requests for the batch. When building the batch raises, each item is
        built on its own, so one item the plugin cannot handle is retried (and in the end
        dead-lettered with the error) while the others are sent now. Items reach the plugin
        stamped with this attempt's time (OutboxItem.attempted_at)."""
        now = self.clock()
        items = [item.attempt_at(now) for item in items]
        try:
            return list(self.plugin.build_requests(items))
        except Exception as exc:
            if len(items) == 1:
                self._plugin_failed(items[0], exc, covered, settlement, report)
                return []
        planned: list[Any] = []
        for item in items:
            try:
                planned.extend(self.plugin.build_requests([item]))
            except Exception as exc:
                self._plugin_failed(item, exc, covered, settlement, report)
        return planned

    def _plugin_failed(self, item: OutboxItem, exc: Exception, covered: set[int],
                       settlement: Settlement, report: DestinationReport) -> None:
        covered.add(item.id)
        if isinstance(exc, ItemRejected):  # raised for this one item: as if Rejected
            self._judge(item, Failed(f"rejected: {exc.reason}"), settlement, report)
            return
        error = f"plugin {self.plugin.plugin_name} build_requests failed: {_describe(exc)}"
        log.warning("%s: %s: %s", self.name, item.message_id, error)
        self._judge(item, Retry(error), settlement, report)

    async def _exchange(self, planned: PlannedRequest, report: DestinationReport,
                        probe: bool) -> list[Outcome]:
        """One planned request and the follow-ups its answers ask for (FollowUp): one outcome
        per carried item, from the last answer. Every request sent is counted, and its
        verdict on the destination goes to the circuit."""
        follow_ups = 0
        while True:
            report.requests += 1
            judged, verdict, error = await self._send(planned)
            self.circuit.record(verdict, error, probe=probe)
            if not isinstance(judged, FollowUp):
                return judged
            if follow_ups == MAX_FOLLOW_UPS:
                error = (f"plugin {self.plugin.plugin_name} asked for more than "
                         f"{MAX_FOLLOW_UPS} follow-up requests")
                return [Retry(error)] * len(planned.items)
            follow_ups += 1
            planned = PlannedRequest(judged.request, planned.items,
                                     judged.rate_key or planned.rate_key, judged.step)

    async def _send(self, planned: PlannedRequest
                    ) -> tuple[list[Outcome] | FollowUp, Verdict, str]:
        """One request: rate limit, the destination's OAuth2 token put on it (a new one
        once when it answers 401), send with the timeout, classify into one outcome per
        item (or the follow-up request the plugin asks for); with what the exchange says
        about the destination (for its circuit)."""
        count = len(planned.items)
        if self.limiter.rate is not None:  # unlimited: no coroutine to await per request
            await self.limiter.acquire(planned.rate_key)
        if self.grant is None and self.grant_error is None:
            response, verdict, error = await self._http(planned.request)
            if response is None:
                return [Retry(error)] * count, verdict, error
            return await self._read(planned, response, count)
        token: Token | None = None
        try:
            token = await self._token()
            response, verdict, error = await self._http(self._authorized(planned, token))
            if response is not None and response.status_code == 401:
                # Revoked, or expired before its time: a token other than this one, once.
                token = await self._token(stale=token.value)
                response, verdict, error = await self._http(self._authorized(planned, token))
        except TokenError as exc:
            reason = hide(exc.reason, token)
            outcome: Outcome = Retry(reason, exc.after) if exc.retry else Failed(reason)
            return ([outcome] * count, Verdict.DOWN if exc.down else Verdict.UP,
                    reason if exc.down else "")
        if response is None:
            error = hide(error, token)
            return [Retry(error)] * count, verdict, error
        judged, verdict, error = await self._read(planned, response, count)
        # An answer may echo the request's headers into a reason: never the token.
        if not isinstance(judged, FollowUp):
            judged = [_hidden(o, token) for o in judged]
        return judged, verdict, hide(error, token)

    async def _read(self, planned: PlannedRequest, response: httpx.Response, count: int
                    ) -> tuple[list[Outcome] | FollowUp, Verdict, str]:
        """The answer's outcomes: the destination function's reading when it has a
        `classify` (in a thread: operator code), else (or when it answers null) the
        plugin's."""
        what = f"HTTP {response.status_code}"
        step = self.transform
        if step is not None and step.reads_answers:
            read = await asyncio.to_thread(step.classify, planned, response)
            if read is not None:
                outcome = read  # narrowed for the closure
                return self._judged(lambda: outcome, count, "classify", what)
        return self._judged(lambda: self.plugin.classify(planned, response), count,
                            "classify", what)

    async def _token(self, stale: str | None = None) -> Token:
        """The destination's access token (TokenError when there is none to be had)."""
        if self.grant is None:
            raise TokenError(self.grant_error or "no grant", retry=True)
        return await self.tokens.get(self.grant, self._fetch_token, stale=stale)

    def _authorized(self, planned: PlannedRequest, token: Token) -> httpx.Request:
        assert self.grant is not None
        return authorize(planned.request, self.grant, token)

    async def _fetch_token(self, request: httpx.Request) -> httpx.Response:
        """A token request, sent as every request is: the destination's client (egress
        guard, bounded read), its timeout."""
        response, _, error = await self._http(request)
        if response is None:
            raise describe_fetch_error(error)
        return response

    async def _http(self, request: httpx.Request
                    ) -> tuple[httpx.Response | None, Verdict, str]:
        """Send one request under the timeout: its response, or None with the error (a
        timeout, a connection error) and the destination counted down."""
        timeout = self.settings.timeout
        # The deadline is the whole exchange's. Per-phase httpx timeouts of the same length
        # (request.extensions["timeout"]) could never fire first: they start later and
        # only cover part of it. They cost timer handles in aiohttp for each response chunk,
        # 5 % of a small request's CPU, so a request carries only those its plugin set.
        started = time.monotonic()
        try:
            with self.deadline:
                response = await send(self.client, request)
            self._timed(started)
            return response, Verdict.UP, ""
        except (TimeoutError, httpx.TimeoutException) as exc:
            if _is_timeout(exc):
                error = (f"timeout after {timeout:g}s ({type(exc).__name__}) "
                         f"sending {_target(request)}")
            else:
                error = (f"connection error sending {_target(request)}: "
                         f"{_describe(exc.__cause__)}")
        except httpx.HTTPError as exc:
            error = f"connection error sending {_target(request)}: {_describe(exc)}"
        except Exception as exc:  # the transport raising anything must not end the worker
            error = f"error sending {_target(request)}: {_describe(exc)}"
        self._timed(started)
        return None, Verdict.DOWN, error

    def _timed(self, started: float) -> None:
        """A request's time (monotonic, from `started`) to the observer."""
        if self.observer is not None:
            self.observer.request(self.name, time.monotonic() - started)

    async def _make_send(self, planned: PlannedSend) -> tuple[list[Outcome], Verdict, str]:
        """One non-HTTP send, made by the sender of its kind under the rate limit and the
        timeout, its receipt classified into one outcome per item; with what it says about
        the destination (for its circuit)."""
        count = len(planned.items)
        send = planned.send
        sender = self.senders.for_kind(send.kind)
        if sender is None:
            # Retried: installing the package that sends this kind makes it deliverable.
            error = (f"no sender for {send.kind} sends (known: "
                     f"{', '.join(self.senders.kinds) or 'none'})")
            return [Retry(error)] * count, Verdict.UNKNOWN, error
        if self.limiter.rate is not None:
            await self.limiter.acquire(planned.rate_key)
        timeout = self.settings.timeout
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                receipt = await sender.send(send, self.send_options)
        except TimeoutError:
            error = f"timeout after {timeout:g}s sending {send.target()}"
            return [Retry(error)] * count, Verdict.DOWN, error
        except SendRefused as exc:  # the store answered: this send can never succeed
            return [Failed(f"{send.target()}: {exc}")] * count, Verdict.UP, ""
        except Exception as exc:  # the sender raising anything must not end the worker
            error = f"error sending {send.target()}: {_describe(exc)}"
            return [Retry(error)] * count, Verdict.DOWN, error
        finally:
            self._timed(started)
        outcomes, verdict, error = self._judged(
            lambda: self.plugin.classify_receipt(planned, receipt), count, "classify_receipt",
            receipt.target)
        if isinstance(outcomes, FollowUp):  # a file put has no next step to send
            error = (f"plugin {self.plugin.plugin_name} classify_receipt answered a FollowUp, "
                     "which only HTTP requests take")
            return [Retry(error)] * count, Verdict.UNKNOWN, error
        return outcomes, verdict, error

    def _judged(self, judge: Callable[[], Outcome | Sequence[Outcome] | FollowUp], count: int,
                method: str, what: str) -> tuple[list[Outcome] | FollowUp, Verdict, str]:
        """The plugin's judgement of an answer (`judge()`) as one outcome per carried item,
        with what it says about the destination (for its circuit): down when every item is
        retried; a judge that raises, or gives the wrong number of outcomes, is a retry; a
        FollowUp is passed on (the destination answered)."""
        try:
            outcome = judge()
        except Exception as exc:
            error = (f"plugin {self.plugin.plugin_name} {method} failed on {what}: "
                     f"{_describe(exc)}")
            return [Retry(error)] * count, Verdict.UNKNOWN, error
        if isinstance(outcome, Delivered):  # the usual answer: nothing to look into
            return [outcome] * count, Verdict.UP, ""
        outcomes: list[Outcome]
        if isinstance(outcome, _OUTCOMES):
            outcomes = [outcome] * count
        elif isinstance(outcome, FollowUp):
            return outcome, Verdict.UP, ""
        else:
            outcomes = list(outcome)
            if len(outcomes) != count or not all(isinstance(o, _OUTCOMES) for o in outcomes):
                error = (f"plugin {self.plugin.plugin_name} {method} returned "
                         f"{len(outcomes)} outcomes for {count} items ({what})")
                return [Retry(error)] * count, Verdict.UNKNOWN, error
        retries = [o for o in outcomes if isinstance(o, Retry)]
        if len(retries) == count:
            return outcomes, Verdict.DOWN, retries[-1].reason
        return outcomes, Verdict.UP, ""

    def _judge(
        self, item: OutboxItem, outcome: Outcome, settlement: Settlement,
        report: DestinationReport,
    ) -> None:
        if isinstance(outcome, Delivered):
            settlement.acks.append(item.id)
            report.delivered += 1
            self._observe(item, "delivered")
            if log.isEnabledFor(logging.DEBUG):
                self._log_item(logging.DEBUG, item, "delivered", None)
            return
        if isinstance(outcome, Failed):
            settlement.deads.append((item.id, outcome.reason))
            report.dead += 1
            report.last_error = outcome.reason
            self._observe(item, "dead")
            self._log_item(logging.WARNING, item, "dead", outcome.reason)
            return
        now = self.clock()
        report.last_error = outcome.reason
        settings = self.settings
        # The retry budget is time (max_age from the row's acceptance), not a count: an
        # outage of hours spends little of it. max_attempts, when set, is a second limit;
        # min_attempts keeps a row that waited out an outage from dying at its first try.
        left = settings.max_age - (now - item.created_at) if item.created_at else math.inf
        if settings.max_attempts is not None and item.attempts >= settings.max_attempts:
            reason = f"gave up after {item.attempts} attempts: {outcome.reason}"
        elif left < 0 and item.attempts >= settings.min_attempts:
            age = now - item.created_at
            reason = (f"gave up after {age:.0f}s (max_age {settings.max_age:g}s), "
                      f"{item.attempts} attempts: {outcome.reason}")
        else:
            delay = retry_delay(outcome.after, item.attempts, base=settings.backoff_base,
                                cap=settings.backoff_max, longest=settings.retry_after_max,
                                rng=self.rng)
            if left > 0:
                delay = min(delay, left)  # the last try lands inside the budget
            settlement.retries.append((item.id, now + delay, outcome.reason))
            report.retried += 1
            self._observe(item, "retry")
            self._log_item(logging.INFO, item, "retry", outcome.reason)
            return
        settlement.deads.append((item.id, reason))
        report.dead += 1
        report.last_error = reason
        self._observe(item, "dead")
        self._log_item(logging.WARNING, item, "dead", reason)

    def _observe(self, item: OutboxItem, outcome: Settled) -> None:
        if self.observer is None:
            return
        waited = (max(0.0, self.clock() - item.created_at)
                  if outcome == "delivered" and item.created_at else None)
        self.observer.settled(self.name, outcome, item.attempts, waited)

    def _log_item(self, level: int, item: OutboxItem, outcome: str, reason: str | None) -> None:
        """One record per message settled (crossdock.logs.DELIVERY_FIELDS): what
        `--log-format json` gives a log pipeline to follow each message by. Delivered ones
        only at debug: at thousands a second they would be most of the log."""
        log.log(level, "%s: %s attempt %d: %s%s", self.name, item.message_id, item.attempts,
                outcome, f": {reason}" if reason else "",
                extra={"destination": self.name, "message_id": item.message_id,
                       "attempt": item.attempts, "outcome": outcome, "reason": reason})

    def _settle(self, batch: _Batch, settlement: Settlement,
                report: DestinationReport) -> None:
        if batch.lost:
            settlement = _without(settlement, batch.lost)
        changed = self.outbox.settle(batch.token, settlement, now=self.clock())
        if changed < len(settlement):
            log.warning("%s: %d of %d rows were no longer leased to this worker (its lease "
                        "expired and another worker took them); their outcomes here were "
                        "dropped", self.name, len(settlement) - changed, len(settlement))
        self.report.add(report)
        self._log(settlement, report)

    def _log(self, settlement: Settlement, report: DestinationReport) -> None:
        summary = (f"{self.name}: {report.delivered} delivered, {report.retried} retry later, "
                   f"{report.dead} dead ({report.requests} requests)")
        if settlement.releases:
            why = "time is up" if self._bound is not None and self.circuit.closed else (
                "circuit open")
            summary += f", {len(settlement.releases)} back to the queue ({why})"
        if settlement.deads:
            # In order, a dead letter is what lets its person's next message go: say so.
            after = ("; later messages of the same people go ahead"
                     if self.settings.ordered else "")
            log.warning("%s; dead: %s%s", summary, settlement.deads[-1][1], after,
                        extra=self._extra)
        elif settlement.retries:
            log.warning("%s; retry: %s", summary, settlement.retries[-1][2], extra=self._extra)
        else:
            log.info("%s", summary, extra=self._extra)

    def _release(self, batch: _Batch) -> None:
        held = [item.id for item in batch.items if item.id not in batch.lost]
        if not held:
            return
        try:
            self.outbox.release(held, batch.token, now=self.clock())
        except Exception:
            log.exception("%s: could not release %d leases; they expire on their own",
                          self.name, len(held))


def _without(settlement: Settlement, ids: set[int]) -> Settlement:
    """The settlement without the rows in `ids`."""
    return Settlement([i for i in settlement.acks if i not in ids],
                      [r for r in settlement.retries if r[0] not in ids],
                      [d for d in settlement.deads if d[0] not in ids],
                      [i for i in settlement.releases if i not in ids])


def _hidden(outcome: Outcome, token: Token | None) -> Outcome:
    """The outcome with the token kept out of its reason."""
    if token is None or isinstance(outcome, Delivered):
        return outcome
    reason = hide(outcome.reason, token)
    if reason == outcome.reason:
        return outcome
    return Retry(reason, outcome.after) if isinstance(outcome, Retry) else Failed(reason)


def _target(request: httpx.Request) -> str:
    """The method and the URL's origin, for error messages (built only then). The path,
    query and user info are left out: they may be secrets (a Slack webhook's path is one)
    and the error is stored, logged and shown by `crossdock status`."""
    url = request.url
    rest = "/…" if url.path not in ("", "/") or url.query else "/"
    return f"{request.method} {url.scheme}://{url.netloc.decode('ascii')}{rest}"


def _is_timeout(exc: BaseException) -> bool:
    # httpx-aiohttp maps every aiohttp connection error, "connection refused" included, to
    # httpx.ConnectTimeout; the aiohttp exception underneath says whether time ran out.
    cause = exc.__cause__
    return (not isinstance(exc, httpx.TimeoutException) or cause is None
            or isinstance(cause, TimeoutError))


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
