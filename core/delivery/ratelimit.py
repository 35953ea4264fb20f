"""Requests per second per rate key: an async token bucket with an injectable clock.

The bucket is kept in its "virtual scheduling" form (GCRA): instead of counting tokens, each key
remembers the theoretical time its next request may go. A caller reserves its slot at once and
then sleeps until it, so concurrent callers queue in order and never wake up to find the token
taken. With `burst` b, up to b requests may go back to back after an idle period; the long-run
rate never exceeds `rate`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


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
