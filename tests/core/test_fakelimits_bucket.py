"""crossdock.testing.fakelimits.LeakyBucket: points refilled continuously, a cost that does
not fit taking nothing (the calculated query cost contract fakes enforce)."""

from __future__ import annotations

from crossdock.testing.clock import ManualClock
from crossdock.testing.fakelimits import LeakyBucket


def test_a_cost_that_does_not_fit_takes_nothing_and_the_bucket_refills() -> None:
    clock = ManualClock(100.0)
    bucket = LeakyBucket(maximum=10, rate=2, clock=clock)
    assert bucket.take(8) == (True, 2)
    assert bucket.take(3) == (False, 2)
    clock.advance(0.5)
    assert bucket.take(3) == (True, 0)
    clock.advance(60)
    assert bucket.available() == 10  # never above the maximum


def test_a_refund_gives_back_what_was_not_spent() -> None:
    clock = ManualClock(0.0)
    bucket = LeakyBucket(maximum=10, rate=1, clock=clock)
    bucket.take(10)
    bucket.refund(4)
    assert bucket.available() == 4
    bucket.refund(100)
    assert bucket.available() == 10
