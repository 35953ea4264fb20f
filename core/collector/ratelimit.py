"""Per-key request limit of the collector: N requests a minute, refused with 429 + Retry-After.

crossdock.delivery.ratelimit.RateLimiter is the delivery side's limiter: `reserve()` always
takes a slot and callers wait for it. The collector must not wait (it answers 429 at once) and
a refused request must not use up capacity, so this is the same GCRA arithmetic with a check
that only takes the slot when the request may go now.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RequestLimiter:
    """`check(key, per_minute)` -> None (go) or the seconds to wait before retrying."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, key: str, per_minute: int) -> float | None:
        interval = 60.0 / per_minute
        # The whole minute's allowance may be used in a burst, as "N a minute" promises.
        tolerance = 60.0 - interval
        with self._lock:
            now = self._clock()
            theoretical = max(self._next.get(key, now), now)
            wait = theoretical - tolerance - now
            if wait > 0:
                return wait
            self._next[key] = theoretical + interval
            return None


def retry_after_header(wait: float) -> str:
    """Whole seconds, rounded up (never 0: that would invite an immediate retry)."""
    return str(max(1, math.ceil(wait)))
