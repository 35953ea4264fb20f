"""Backoff delays and rate-limit spacing, exact under a seeded RNG and a controlled clock."""

from __future__ import annotations

import random

import pytest

from crossdock.delivery.backoff import backoff_ceiling, backoff_delay
from crossdock.delivery.ratelimit import FleetRateLimiter, RateLimiter


def test_backoff_ceiling_doubles_from_base_and_stops_at_the_cap() -> None:
    assert [backoff_ceiling(n, 1.0, 20.0) for n in range(1, 7)] == [1, 2, 4, 8, 16, 20]
    assert backoff_ceiling(5000, 1.0, 600.0) == 600.0


def test_backoff_is_full_jitter_and_reproducible_with_a_seeded_rng() -> None:
    delays = [backoff_delay(n, base=2.0, cap=30.0, rng=random.Random(7)) for n in (1, 2, 3, 9)]
    expected = [random.Random(7).uniform(0, c) for c in (2.0, 4.0, 8.0, 30.0)]
    assert delays == expected
    rng = random.Random(1)
    spread = [backoff_delay(4, base=1.0, cap=600.0, rng=rng) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in spread)
    assert min(spread) < 1.0 and max(spread) > 7.0  # the whole range is used, not a point


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_requests_are_spaced_one_interval_apart_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(10):
        await limiter.acquire("hook")
        sent.append(clock.now)
    assert sent == pytest.approx([i * 0.25 for i in range(10)])
    # Within any one-second window the limit holds.
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 1.0) <= 4


async def test_keys_are_limited_independently_and_none_is_unlimited() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    assert limiter.reserve("a") == 0.0
    assert limiter.reserve("b") == 0.0
    assert limiter.reserve("a") == 1.0
    assert limiter.reserve("a") == 2.0  # reservations queue up for concurrent callers
    unlimited = RateLimiter(None, clock=clock, sleep=clock.sleep)
    assert [unlimited.reserve("a") for _ in range(5)] == [0.0] * 5


async def test_a_burst_goes_back_to_back_then_the_rate_applies() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, burst=3, clock=clock, sleep=clock.sleep)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])
    clock.now = 100.0  # idle long enough: the burst is available again
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimiter(0)


class Reservations:
    """An outbox's `reserve_rate` as the fleet limiter calls it: answers in turn (a delay,
    None for "no shared buckets", or an exception for an unreachable database)."""

    def __init__(self, *answers: float | Exception | None) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, float, int]] = []

    def __call__(self, scope: str, interval: float, burst: int) -> float | None:
        self.calls.append((scope, interval, burst))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_the_fleet_limiter_waits_for_the_shared_slot() -> None:
    clock = Clock()
    reserve = Reservations(0.0, 0.25)
    limiter = FleetRateLimiter(4.0, "hook", reserve, clock=clock, sleep=clock.sleep)
    assert [await limiter.acquire("k"), await limiter.acquire("k")] == [0.0, 0.25]
    assert clock.now == 0.25
    assert reserve.calls == [("hook\x1fk", 0.25, 1)] * 2


async def test_the_fleet_limiter_is_the_local_one_without_shared_buckets() -> None:
    clock = Clock()
    reserve = Reservations(None)
    limiter = FleetRateLimiter(2.0, "hook", reserve, clock=clock, sleep=clock.sleep)
    assert [await limiter.acquire() for _ in range(3)] == [0.0, 0.5, 0.5]
    assert len(reserve.calls) == 1  # asked once: an SQLite outbox never shares


async def test_an_unreachable_bucket_limits_the_daemon_alone_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    reserve = Reservations(OSError("connection refused"), OSError("connection refused"), 0.0)
    limiter = FleetRateLimiter(2.0, "hook", reserve, clock=clock, sleep=clock.sleep)
    assert [await limiter.acquire() for _ in range(3)] == [0.0, 0.5, 0.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["hook: the fleet's rate limit cannot be read (connection refused); "
                        "limiting this daemon alone until it can"]
