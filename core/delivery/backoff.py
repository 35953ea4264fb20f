"""How long to wait before the next attempt: exponential backoff with full jitter.

attempt n (1 for the first retry after one failed attempt) waits a uniformly random time in
[0, min(cap, base * 2**(n-1))]. Full jitter spreads the retries of a destination that failed
for everyone at once, so they do not return as one burst (AWS Architecture Blog, "Exponential
Backoff And Jitter").
"""

from __future__ import annotations

import math
import random


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """The longest wait after `attempt` failed attempts."""
    exponent = max(attempt, 1) - 1
    # 2**exponent overflows floats past ~1024; the cap is reached long before.
    if exponent > 60:
        return cap
    return min(cap, base * 2.0**exponent)


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after `attempt` failed attempts; deterministic given a seeded `rng`."""
    return (rng or random).uniform(0.0, backoff_ceiling(attempt, base, cap))


def retry_delay(
    after: float | None, attempt: int, *, base: float, cap: float, longest: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds until the next attempt after `attempt` failed ones: what the destination asked
    for (`after`, from Retry-After), at most `longest`, when it is a usable number of seconds;
    else the backoff. A negative or non-finite `after` counts as none."""
    if after is not None and math.isfinite(after) and after >= 0:
        return min(after, longest)
    return backoff_delay(attempt, base=base, cap=cap, rng=rng)
