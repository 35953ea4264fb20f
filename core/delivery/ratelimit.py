"""Requests per second per rate key: an async token bucket with an injectable clock, and the
same bucket kept in the outbox for a whole fleet of daemons (`FleetRateLimiter`).

The bucket is kept in its "virtual scheduling" form (GCRA): instead of counting tokens, each key
remembers the theoretical time its next request may go. A caller reserves its slot at once and
then sleeps until it, so concurrent callers queue in order and never wake up to find the token
taken. With `burst` b, up to b requests may go back to back after an idle period; the long-run
rate never exceeds `rate`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("crossdock.delivery")

#: `Outbox.reserve_rate(scope, interval, burst)`: seconds until the slot, None when the outbox
#: keeps no shared buckets
Reserve = Callable[[str, float, int], float | None]


class RateLimiter:
    """`await limiter.acquire(key)` returns when a request for `key` may be sent."""

    def __init__(
        self,
        rate: float | None,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}

    def reserve(self, key: str = "") -> float:
        """Take the next slot for `key`; returns how many seconds until it (0: go now)."""
        if self.rate is None:
            return 0.0
        interval = 1.0 / self.rate
        now = self._clock()
        theoretical = max(self._next.get(key, now), now)
        delay = max(0.0, theoretical - (self.burst - 1) * interval - now)
        self._next[key] = theoretical + interval
        return delay

    async def acquire(self, key: str = "") -> float:
        """Wait for a slot; returns the seconds waited."""
        delay = self.reserve(key)
        if delay > 0:
            await self._sleep(delay)
        return delay


class FleetRateLimiter:
    """A destination's rate limit held by every daemon on one outbox together: each request
    takes its slot in the outbox's shared bucket (`Outbox.reserve_rate`, a row on
    PostgreSQL), so N daemons send at the configured rate, not N times it. On an outbox that
    keeps no shared buckets (SQLite) it is the in-memory `RateLimiter`, as it is for a
    request whose reservation fails (the database unreachable for a moment: delivery goes on,
    limited per daemon, and says so)."""

    def __init__(
        self,
        rate: float | None,
        scope: str,
        reserve: Reserve,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.local = RateLimiter(rate, burst=burst, clock=clock, sleep=sleep)
        self.rate = rate
        self.scope = scope
        self._reserve = reserve
        self._sleep = sleep
        #: None until the outbox answered whether it shares buckets
        self._shared: bool | None = None
        self._failing = False

    async def acquire(self, key: str = "") -> float:
        """Wait for a slot; returns the seconds waited."""
        if self.rate is None or self._shared is False:
            return await self.local.acquire(key)
        try:
            # In a thread: the reservation is a database round trip, and the loop has
            # other destinations to serve meanwhile.
            delay = await asyncio.to_thread(self._reserve, f"{self.scope}\x1f{key}",
                                            1.0 / self.rate, self.local.burst)
        except Exception as exc:
            if not self._failing:
                log.warning("%s: the fleet's rate limit cannot be read (%s); limiting this "
                            "daemon alone until it can", self.scope, exc)
                self._failing = True
            return await self.local.acquire(key)
        if delay is None:
            self._shared = False
            return await self.local.acquire(key)
        self._shared = True
        self._failing = False
        if delay > 0:
            await self._sleep(delay)
        return delay

