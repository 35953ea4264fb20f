"""The counts the console's overview and destination pages show, read in the background so a
page never waits on them.

Counting a big outbox grows with the rows waiting (PostgreSQL walks one index entry per
waiting row: ~200 ms at 1,000,000 queued, and the accepted-per-minute chart adds ~80 ms;
docs/benchmarks.md), so a page renders the latest snapshot, with its age shown, and a thread
reads the next one every few seconds while someone looks. Counting stops when no page has
asked for a minute (an open console that nobody looks at keeps no database busy); the next
page after that reads a snapshot first. After an action made from the console (pause,
resume, replay, a test message) the snapshot is read again at once, so the page the action
leads to shows what it did. `crossdock status` always counts (it never reads this).

A failing read keeps the last good snapshot and records the error, which the pages show
(with the snapshot's age) instead of failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from crossdock.console.reads import PerMinute
from crossdock.views import OutboxStatus

log = logging.getLogger("crossdock.console")

#: how often a snapshot is read while pages ask for it (seconds), at the least
EVERY = 5.0
#: ... and at most this share of the time goes to reading: every open console would
#: otherwise keep the database busy counting
BUSY_SHARE = 0.1
#: no page asked for this long (seconds): stop reading until one does
IDLE = 60.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the overview shows, as read at `taken_at` (time.time()) in `took` seconds."""

    status: OutboxStatus
    minutes: PerMinute
    taken_at: float
    took: float


@dataclass(frozen=True, slots=True)
class Reading:
    """The latest snapshot (None: none could be read yet) and, when the last read failed,
    why and when."""

    snapshot: Snapshot | None
    error: str | None = None
    failed_at: float | None = None


class Snapshots:
    """Reads a Snapshot with `read` in a thread of its own every `every` seconds (longer when
    a read takes more than BUSY_SHARE of that) while `get` is called."""

    def __init__(self, read: Callable[[], tuple[OutboxStatus, PerMinute]], *,
                 every: float = EVERY, idle: float = IDLE) -> None:
        self._read_counts = read
        self.every = every
        self.idle = idle
        self._latest = Reading(None)
        #: one read at a time (the thread's, a page's first, an action's)
        self._reading = threading.Lock()
        #: guards _thread, _fresh and _asked_at
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        #: whether the thread has kept the snapshot current (False: read before showing it)
        self._fresh = False
        self._asked_at = 0.0
        self._stopped = threading.Event()

    @property
    def interval(self) -> float:
        """Seconds between reads (and between the page's own refreshes)."""
        took = self._latest.snapshot.took if self._latest.snapshot else 0.0
        return max(self.every, took / BUSY_SHARE)

    @property
    def running(self) -> bool:
        """Whether the background reads go on (False before the first look, and after
        nobody looked for `idle` seconds)."""
        with self._guard:
            return self._thread is not None

    def get(self) -> Reading:
        """The latest reading; reads one first when none is current (the first page, or the
        first after the console sat unwatched), and keeps the thread reading."""
        with self._guard:
            self._asked_at = time.monotonic()
            fresh = self._fresh
        if not fresh:
            with self._reading:
                if not self._fresh:
                    self._read()
        with self._guard:
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(target=self._run, name="console-counts",
                                                daemon=True)
                self._thread.start()
        return self._latest

    def refresh(self) -> Reading:
        """Read a snapshot now (after an action: the page it leads to shows its effect)."""
        asked = time.time()
        with self._reading:
            current = self._latest.snapshot
            if current is None or current.taken_at < asked or self._latest.error:
                self._read()
        return self._latest

    def stop(self, wait: float = 10.0) -> None:
        """No more reads in the background (the console is stopping); waits up to `wait`
        seconds for a read under way, so the outbox can be closed after it."""
        self._stopped.set()
        with self._guard:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def _read(self) -> None:
        """One read (the caller holds _reading)."""
        started = time.time()
        try:
            status, minutes = self._read_counts()
        except Exception as exc:  # shown on the page; the next read tries again
            log.warning("console: reading the outbox's counts failed: %s", exc)
            self._latest = Reading(self._latest.snapshot, f"{type(exc).__name__}: {exc}",
                                   time.time())
        else:
            self._latest = Reading(Snapshot(status, minutes, started, time.time() - started))
        with self._guard:
            self._fresh = True

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._guard:
                if time.monotonic() - self._asked_at > self.idle:
                    # Nobody looked for a while: stop, and read again before the next page.
                    self._thread = None
                    self._fresh = False
                    return
            with self._reading:
                self._read()
        with self._guard:
            self._thread = None
