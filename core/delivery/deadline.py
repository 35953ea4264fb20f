"""The per-request deadline of a destination's HTTP requests, on one timer for all of them.

    deadline = Deadline(settings.timeout)
    with deadline:                      # in a task: as `async with asyncio.timeout(...)`
        response = await send(client, request)

Inside the block the current task is cancelled when `seconds` have passed since it entered,
and the CancelledError leaving the block becomes a TimeoutError, exactly as
`asyncio.timeout(seconds)` does (a cancellation of the task from elsewhere goes through as a
CancelledError).

Why not `asyncio.timeout`: it schedules a timer handle for every request and cancels it when
the answer comes, which is 2 % of a one-message request's CPU, and the cancelled handles
pile up in the event loop's heap until it is rebuilt. Every request of a destination has the
same timeout, so each new deadline is later than those already waiting: one timer, set for the
earliest, serves them all. When it fires, it cancels the tasks whose deadline has come and is
set again for the earliest of the rest; a request answered in time costs a dictionary entry,
and the timer fires about once a timeout whatever the request rate.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType


class Deadline:
    """`with deadline:` in a task is `async with asyncio.timeout(seconds):` (see the module);
    one object serves any number of tasks of one event loop at once, each its own deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: the tasks inside the block: their deadline (loop time) and `cancelling()` on entry
        self._due: dict[asyncio.Task[object], tuple[float, int]] = {}
        #: the tasks this deadline cancelled, not yet out of the block
        self._expired: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline is entered inside a task")
        loop = task.get_loop()
        if loop is not self._loop:
            # A worker reused under another event loop: that loop's timer and tasks are gone.
            self._loop, self._timer = loop, None
            self._due.clear()
            self._expired.clear()
        when = loop.time() + self.seconds
        self._due[task] = (when, task.cancelling())
        timer = self._timer
        if timer is None or timer.when() > when:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(when, self._fire)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        _, cancelling = self._due.pop(task)
        if task in self._expired:
            self._expired.discard(task)
            # As asyncio.timeout: the cancellation was ours when no other is outstanding.
            if task.uncancel() <= cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None and self._timer is not None
        # The loop runs a timer up to its clock resolution early: what was due by the
        # timer's time is due now.
        now = max(loop.time(), self._timer.when())
        self._timer = None
        earliest = math.inf
        for task, (when, _) in self._due.items():
            if when <= now:
                if task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
            elif when < earliest:
                earliest = when
        if earliest < math.inf:
            self._timer = loop.call_at(earliest, self._fire)
