"""Fixed-window rate limits for contract fakes: what APIs that answer with
`x-ratelimit-limit` / `x-ratelimit-remaining` / `x-ratelimit-reset` count (Attentive: requests
per second per endpoint; Pipedrive: requests per 2 seconds, and a daily token budget where
each request costs what its endpoint costs).

    window = FixedWindow(limit=10, seconds=1.0, clock=clock)
    taken = window.take("token:/v1/subscriptions")        # cost 1
    if not taken.allowed: ... 429, headers taken.headers()

The clock is injectable (`crossdock.testing.clock.ManualClock`), so tests step time instead of
sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: the header names most APIs use (Attentive, Pipedrive)
RATELIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@dataclass(frozen=True, slots=True)
class Taken:
    """One request's count against a window: whether it fits, and what is left."""

    allowed: bool
    limit: float
    remaining: float
    #: seconds until the window starts again
    reset: float

    def headers(self, names: tuple[str, str, str] = RATELIMIT_HEADERS) -> dict[str, str]:
        """The limit, what remains and the seconds until the reset (rounded up) under the
        API's three header names, in that order."""
        limit, remaining, reset = names
        return {limit: f"{self.limit:g}", remaining: f"{max(0.0, self.remaining):g}",
                reset: str(max(1, math.ceil(self.reset)))}


@dataclass
class FixedWindow:
    """At most `limit` (units of cost) per `seconds`-long window, per key. Windows start at
    multiples of `seconds` on the clock, as a per-second or per-day budget resets."""

    limit: float
    seconds: float
    clock: Callable[[], float] = time.monotonic
    _spent: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, key: str, cost: float = 1.0) -> Taken:
        """Count `cost` against `key`'s current window if it fits; a request that does not
        fit spends nothing (it is refused)."""
        now = self.clock()
        window = math.floor(now / self.seconds)
        reset = (window + 1) * self.seconds - now
        with self._lock:
            started, spent = self._spent.get(key, (window, 0.0))
            if started != window:
                spent = 0.0
            if spent + cost > self.limit:
                self._spent[key] = (window, spent)
                return Taken(False, self.limit, self.limit - spent, reset)
            spent += cost
            self._spent[key] = (window, spent)
            return Taken(True, self.limit, self.limit - spent, reset)

    def clear(self) -> None:
        with self._lock:
            self._spent.clear()


@dataclass
class LeakyBucket:
    """A bucket of `maximum` points refilled continuously at `rate` points a second, as
    Shopify's calculated query cost: a request whose cost the bucket holds takes it, one it
    does not is refused and takes nothing.

        bucket = LeakyBucket(maximum=1000, rate=50, clock=clock)
        taken, available = bucket.take(cost=12)
    """

    maximum: float
    rate: float
    clock: Callable[[], float] = time.monotonic
    _level: float | None = field(default=None, repr=False)
    _at: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def available(self) -> float:
        """The points the bucket holds now."""
        with self._lock:
            return self._refill()

    def take(self, cost: float) -> tuple[bool, float]:
        """(whether `cost` fitted and was taken, the points left)."""
        with self._lock:
            level = self._refill()
            if cost > level:
                return False, level
            self._level = level - cost
            return True, self._level

    def refund(self, points: float) -> None:
        """Give back what a request did not spend (its requested minus its actual cost)."""
        with self._lock:
            self._level = min(self.maximum, self._refill() + points)

    def _refill(self) -> float:
        now = self.clock()
        if self._level is None:
            self._level = self.maximum
        else:
            self._level = min(self.maximum, self._level + (now - self._at) * self.rate)
        self._at = now
        return self._level
