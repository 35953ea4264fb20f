"""Group commit: tracking requests that arrive while an accept transaction commits are accepted
together in the next one, each answered only after that commit ("queued" means committed).

A SQLite outbox has one writer at a time, so concurrent requests used to wait for each other's
BEGIN ... COMMIT one by one, each paying a transaction (the write lock, the profile batch's
reads and writes, the WAL append) for one message. Here the first request starts a group at
once (no timer, no added wait when the collector is idle); whatever arrives while that group
is in its thread forms the next group, up to `max_messages`. The group's messages are
accepted in ONE `Pipeline.accept_parts` call, one part per request: the profile store reads
and writes a call's people set-wise, so a group of eight /v1/track requests costs one read and
one write of each profile table, and on PostgreSQL one sorted lock set per transaction keeps
two daemons from deadlocking. A request that fails inside a group (a bug, not a bad message:
those are answered by index) sends the group back to a transaction per request, so it fails
alone and the others' messages commit (Collector._accept_group in app.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: messages per group at most, so one transaction stays short
MAX_GROUP_MESSAGES = 500


@dataclass
class Outcome(Generic[R]):
    """One request's answer from its group: a value, or the error to raise for it."""

    value: R | None = None
    error: BaseException | None = None


class AcceptGroups(Generic[T, R]):
    """Runs `accept(items)` (in a thread, one transaction) for groups of submitted items.

    The groups run one after another in ONE thread of their own: never two at once (the
    next group forms while one runs), and handing a group to a dedicated thread costs a
    C queue's put and one wake-up of the event loop. anyio's thread pool
    (`run_in_threadpool`), used before, took a capacity limiter, a cancel scope and a
    Condition-based queue per hand-off: about a tenth of the event loop's time per
    /v1/track request when groups were small."""

    def __init__(self, accept: Callable[[Sequence[T]], list[Outcome[R]]],
                 size: Callable[[T], int], *, grouped: bool,
                 max_messages: int = MAX_GROUP_MESSAGES) -> None:
        self.accept = accept
        self.size = size
        self.grouped = grouped
        self.max_messages = max_messages
        self.pending: list[tuple[T, asyncio.Future[Outcome[R]]]] = []
        self.running = False
        #: groups committed, and requests in them (for /metrics)
        self.groups = 0
        self.requests = 0
        #: requests in the group whose transaction runs now
        self.in_flight = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crossdock-accept")

    def close(self) -> None:
        """Let the accept thread go once the group it runs (if any) is done."""
        self._thread.shutdown(wait=False)

    async def _run(self, items: list[T]) -> list[Outcome[R]]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.accept, items)

    async def submit(self, item: T) -> R:
        """`item`'s answer, once the transaction that accepted it committed."""
        if not self.grouped:
            outcome = (await self._run([item]))[0]
            self.groups += 1
            self.requests += 1
            return self._unwrap(outcome)
        future: asyncio.Future[Outcome[R]] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return self._unwrap(await asyncio.shield(future))

    @staticmethod
    def _unwrap(outcome: Outcome[R]) -> R:
        if outcome.error is not None:
            raise outcome.error
        assert outcome.value is not None
        return outcome.value

    def _take(self) -> list[tuple[T, asyncio.Future[Outcome[R]]]]:
        taken = 0
        count = 0
        for item, _ in self.pending:
            if count and taken + self.size(item) > self.max_messages:
                break
            taken += self.size(item)
            count += 1
        group, self.pending = self.pending[:count], self.pending[count:]
        return group

    async def _drain(self) -> None:
        try:
            while self.pending:
                group = self._take()
                self.in_flight = len(group)
                try:
                    outcomes = await self._run([i for i, _ in group])
                except Exception as exc:  # the commit itself failed: nobody's message is in
                    outcomes = [Outcome(error=exc) for _ in group]
                finally:
                    self.in_flight = 0
                self.groups += 1
                self.requests += len(group)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self.running = False
