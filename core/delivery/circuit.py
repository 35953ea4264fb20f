"""A circuit per destination: stop sending to a destination that is down, and probe it.

    closed --`failures` failed requests in a row--> open --next_probe_at--> probing
      ^                                              ^                         | one request
      +--------------- any request succeeds ---------+----- the probe fails ---+ (waits grow)

While the circuit is open no batch is leased: rows stay queued in their order with their
attempts, instead of each spending its attempts on a destination known to be down. One worker
at a time claims the probe (a single row, sent alone); the wait before the next probe doubles
from `probe_base` to `probe_max`, each drawn between half and all of its ceiling so that
workers and daemons do not probe in step.

A failed request is one the destination did not answer usefully: a timeout, a connection
error, or a response whose every item is to be retried (5xx, 429, 408). A response with any
item delivered or refused for good shows the destination is there, and closes the circuit.
Plugin errors (a `classify` that raises) say nothing about the destination and count neither
way.

The state is stored in the outbox (`Outbox.circuit`, `Outbox.swap_circuit`), so every daemon
on a shared PostgreSQL outbox obeys one circuit, and `crossdock status` in another process
shows it. Each worker keeps a copy, read again at most every `REFRESH` seconds, and writes
only on a change; a write that finds the stored version moved reads it again and re-applies.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from dataclasses import replace

from crossdock.config import CircuitConfig
from crossdock.delivery.backoff import backoff_ceiling
from crossdock.outbox.base import Circuit, Outbox

log = logging.getLogger("crossdock.delivery")

#: seconds a worker's copy of the circuit is trusted before it is read again
REFRESH = 1.0
#: tries of a compare-and-swap before giving up on one change (other daemons keep changing it)
_SWAP_TRIES = 5


class Gate(enum.Enum):
    """What the circuit lets a worker do now."""

    SEND = "send"  # closed: lease a batch
    PROBE = "probe"  # this worker holds the probe: lease one row and send it alone
    WAIT = "wait"  # open: lease nothing


class Verdict(enum.Enum):
    """What one request says about the destination."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class CircuitBreaker:
    """One destination's circuit as one worker sees and changes it."""

    def __init__(self, destination: str, outbox: Outbox, settings: CircuitConfig, *,
                 probe_hold: float, clock: Callable[[], float],
                 rng: random.Random | None = None) -> None:
        self.destination = destination
        self.outbox = outbox
        self.settings = settings
        #: how long a claimed probe is this worker's: after it, another may probe (the
        #: prober died)
        self.probe_hold = probe_hold
        self.clock = clock
        self.rng = rng or random.Random()
        self._seen = Circuit(destination)
        self._seen_at: float | None = None

    @property
    def closed(self) -> bool:
        """True unless this worker last saw the circuit open or probing."""
        return not self.settings.enabled or self._seen.state == "closed"

    def current(self) -> Circuit:
        """The circuit, read again from the outbox when the copy is older than REFRESH."""
        now = self.clock()
        if self._seen_at is None or not 0 <= now - self._seen_at < REFRESH:
            self._read(now)
        return self._seen

    def gate(self) -> Gate:
        """Whether to lease a batch, one probe row, or nothing now."""
        if not self.settings.enabled:
            return Gate.SEND
        circuit = self.current()
        if circuit.state == "closed":
            return Gate.SEND
        now = self.clock()
        if circuit.next_probe_at is not None and circuit.next_probe_at > now:
            return Gate.WAIT
        claimed = replace(circuit, state="probing", next_probe_at=now + self.probe_hold)
        if self._swap(circuit, claimed, now):
            log.info("%s: circuit %s, probing with one request", self.destination,
                     circuit.state)
            return Gate.PROBE
        return Gate.WAIT

    def unclaim(self) -> None:
        """Give a claimed probe back unused (no row was due): the next due row probes."""
        self._change(lambda c: replace(c, state="open", next_probe_at=self.clock())
                     if c.state == "probing" else None)

    def record(self, verdict: Verdict, error: str = "", *, probe: bool = False) -> None:
        """Note one request's verdict; `probe` when it was the probe this worker claimed."""
        if not self.settings.enabled or verdict is Verdict.UNKNOWN:
            return
        if verdict is Verdict.UP:
            seen = self._seen
            if seen.state == "closed" and seen.failures == 0:
                return  # nothing to change: `_succeeded` would say so, at a cost per request
            self._change(self._succeeded)
        else:
            self._change(lambda c: self._failed(c, error, probe))

    # -- transitions ----------------------------------------------------------------------

    def _succeeded(self, circuit: Circuit) -> Circuit | None:
        if circuit.state == "closed" and circuit.failures == 0:
            return None
        if circuit.state != "closed":
            log.warning("%s: circuit closed: the destination answers again", self.destination)
        return Circuit(circuit.destination, version=circuit.version)

    def _failed(self, circuit: Circuit, error: str, probe: bool) -> Circuit:
        now = self.clock()
        failures = circuit.failures + 1
        if circuit.state == "closed" and failures >= self.settings.failures:
            log.warning("%s: circuit open after %d failed requests in a row (%s); one probe "
                        "at a time from now on", self.destination, failures, error)
            return replace(circuit, state="open", failures=failures, opened_at=now, probes=0,
                           next_probe_at=now + self._probe_delay(0), last_error=error)
        if circuit.state == "probing" and probe:
            probes = circuit.probes + 1
            return replace(circuit, state="open", failures=failures, probes=probes,
                           next_probe_at=now + self._probe_delay(probes), last_error=error)
        return replace(circuit, failures=failures, last_error=error)

    def _probe_delay(self, probes: int) -> float:
        ceiling = backoff_ceiling(probes + 1, self.settings.probe_base, self.settings.probe_max)
        return self.rng.uniform(ceiling / 2, ceiling)

    # -- storage --------------------------------------------------------------------------

    def _read(self, now: float) -> None:
        self._seen = self.outbox.circuit(self.destination)
        self._seen_at = now

    def _change(self, change: Callable[[Circuit], Circuit | None]) -> None:
        for _ in range(_SWAP_TRIES):
            circuit = self._seen
            new = change(circuit)
            if new is None or new == circuit:
                return
            if self._swap(circuit, new, self.clock()):
                return
        log.warning("%s: circuit changed by others %d times in a row; this worker's change "
                    "was dropped", self.destination, _SWAP_TRIES)

    def _swap(self, old: Circuit, new: Circuit, now: float) -> bool:
        """Store `new` over `old`; on a conflict read the stored circuit again."""
        if self.outbox.swap_circuit(old, new, now):
            self._seen = replace(new, version=old.version + 1)
            self._seen_at = now
            return True
        self._read(now)
        return False
