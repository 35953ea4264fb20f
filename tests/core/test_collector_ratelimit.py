"""The collector's limiter (crossdock.collector.ratelimit): what a client address is counted
by, and that the addresses it remembers do not grow without bound."""

from __future__ import annotations

import pytest

from crossdock.collector import ratelimit
from crossdock.collector.ratelimit import RequestLimiter, client_key


@pytest.mark.parametrize(("host", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    # One IPv6 host commonly holds a /64: its addresses share one allowance.
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, "(unknown)"),
    ("testclient", "testclient"),
])
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key


def test_charge_counts_past_the_limit_and_wait_only_asks() -> None:
    now = [0.0]
    limiter = RequestLimiter(lambda: now[0])
    for _ in range(3):
        assert limiter.wait("a", 3) is None
        limiter.charge("a", 3)
    assert limiter.wait("a", 3) == 20.0
    assert limiter.wait("a", 3) == 20.0  # asking takes nothing
    assert limiter.wait("b", 3) is None
    now[0] = 20.0
    assert limiter.wait("a", 3) is None


def test_addresses_back_at_their_full_allowance_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "PRUNE_AT", 100)
    now = [0.0]
    limiter = RequestLimiter(lambda: now[0])
    for i in range(100):
        limiter.charge(f"10.0.0.{i}", 60)  # one slot each: theirs again a second later
    now[0] = 0.5
    limiter.charge("10.0.1.0", 60)
    now[0] = 2.0
    limiter.charge("10.0.1.1", 60)
    limiter.charge("10.0.1.2", 60)
    # 101 at 0.5 s, all still counting; pruned at 2 s, when only the two charged since are.
    assert len(limiter) == 2
