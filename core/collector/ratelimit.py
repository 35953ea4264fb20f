"""The collector's request limits: N a minute, refused with 429 + Retry-After.

Two limits use it: each key's requests (`rate_limit_per_minute`), and each client address's
failed authentications (`auth_failures_per_minute`), so that keys cannot be guessed at the
speed of the network.

crossdock.delivery.ratelimit.RateLimiter is the delivery side's limiter: `reserve()` always
takes a slot and callers wait for it. The collector must not wait (it answers 429 at once) and
a refused request must not use up capacity, so this is the same GCRA arithmetic with a check
that only takes the slot when the request may go now.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import threading
import time
from collections.abc import Callable

#: keys remembered before those back at their full allowance are forgotten
PRUNE_AT = 10_000


class RequestLimiter:
    """`check(key, per_minute)` -> None (go) or the seconds to wait before retrying.
    `wait` asks the same without taking a slot and `charge` takes one regardless, for a limit
    on what a request turns out to be (a failed authentication) rather than on the request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, key: str, per_minute: int) -> float | None:
        with self._lock:
            now = self._clock()
            wait = self._wait(key, per_minute, now)
            if wait is None:
                self._take(key, per_minute, now)
            return wait

    def wait(self, key: str, per_minute: int) -> float | None:
        with self._lock:
            return self._wait(key, per_minute, self._clock())

    def charge(self, key: str, per_minute: int) -> None:
        with self._lock:
            self._take(key, per_minute, self._clock())

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._next)

    def _wait(self, key: str, per_minute: int, now: float) -> float | None:
        # The whole minute's allowance may be used in a burst, as "N a minute" promises.
        tolerance = 60.0 - 60.0 / per_minute
        wait = max(self._next.get(key, now), now) - tolerance - now
        return wait if wait > 0 else None

    def _take(self, key: str, per_minute: int, now: float) -> None:
        self._next[key] = max(self._next.get(key, now), now) + 60.0 / per_minute
        if len(self._next) > PRUNE_AT:
            # A key whose next slot is in the past has its whole allowance: nothing to keep.
            # Client addresses are unbounded in number; configured keys are not.
            self._next = {k: at for k, at in self._next.items() if at > now}


def retry_after_header(wait: float) -> str:
    """Whole seconds, rounded up (never 0: that would invite an immediate retry)."""
    return str(max(1, math.ceil(wait)))


# Asked for every request (the failed-authentication check comes before the key is read);
# parsing the address each time was a few microseconds of the event loop's per request.
@functools.lru_cache(maxsize=4096)
def client_key(host: str | None) -> str:
    """The address a client's failures are counted by: an IPv4 address, or the /64 network of
    an IPv6 one (a host commonly holds a whole /64, so counting single addresses would give
    it 2^64 allowances)."""
    if not host:
        return "(unknown)"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)
