"""The fleet registry and fleet-once timers on a PostgreSQL outbox (a fresh schema per test),
and the trivial local variant for SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossdock.fleet import FleetMember, LocalFleet, PostgresFleet, fleet_for
from crossdock.outbox import NewRow, open_outbox
from crossdock.outbox.postgres import PostgresOutbox

T0 = 1_700_000_000.0


@pytest.fixture
def outboxes(pg_url: str) -> Iterator[list[PostgresOutbox]]:
    handles = [PostgresOutbox(pg_url) for _ in range(3)]
    yield handles
    for handle in handles:
        handle.close()


@pytest.mark.postgres
def test_a_timer_is_claimed_by_one_daemon_per_interval(outboxes: list[PostgresOutbox]) -> None:
    a, b, _ = (PostgresFleet(o) for o in outboxes)
    assert a.claim("cleanup", 60, "a", now=T0) is True
    assert b.claim("cleanup", 60, "b", now=T0) is False
    assert b.claim("cleanup", 60, "b", now=T0 + 30) is False
    assert b.claim("other", 60, "b", now=T0 + 30) is True  # timers are independent
    # a daemon that died holds nothing: the next interval goes to whoever fires first
    assert b.claim("cleanup", 60, "b", now=T0 + 60) is True
    assert a.claim("cleanup", 60, "a", now=T0 + 61) is False


@pytest.mark.postgres
def test_claims_racing_from_many_threads_let_exactly_one_through(
    outboxes: list[PostgresOutbox],
) -> None:
    fleets = [PostgresFleet(outboxes[i % 3]) for i in range(9)]
    start = threading.Barrier(len(fleets))
    won: list[bool] = [False] * len(fleets)

    def race(index: int) -> None:
        start.wait()
        won[index] = fleets[index].claim("sweep", 60, f"d{index}", now=T0)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(fleets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won.count(True) == 1


@pytest.mark.postgres
def test_status_shows_running_lost_and_stopped_daemons_with_their_leases(
    outboxes: list[PostgresOutbox],
) -> None:
    outbox = outboxes[0]
    fleet = fleet_for(outbox)
    assert isinstance(fleet, PostgresFleet)
    fleet.register("host:1:a", ["slack", "hook"], now=T0)
    fleet.register("host:2:b", ["slack"], now=T0)
    fleet.register("host:3:c", ["slack"], now=T0)
    outbox.enqueue([NewRow("slack", f"m{i}", {}) for i in range(5)], now=T0)
    outbox.lease("slack", 3, 600, "host:1:a", now=T0)
    outbox.lease("slack", 1, 600, "host:2:b", now=T0)
    fleet.heartbeat("host:1:a", now=T0 + 40)
    fleet.stopped("host:3:c", now=T0 + 40)
    shown = {d.owner: d for d in fleet.daemons(now=T0 + 41)}
    assert {o: (d.state, d.leased) for o, d in shown.items()} == {
        "host:1:a": ("running", 3), "host:2:b": ("lost", 1), "host:3:c": ("stopped", 0)}
    assert shown["host:1:a"].destinations == ["slack", "hook"]
    # once the lost daemon's leases expire they are no longer its to hold
    assert {d.owner: d.leased for d in fleet.daemons(now=T0 + 700)}["host:2:b"] == 0


@pytest.mark.postgres
async def test_fleet_once_wrappers_run_a_timer_on_one_member(
    outboxes: list[PostgresOutbox],
) -> None:
    runs: list[str] = []
    members = [FleetMember(o, f"d{i}", ["a"]) for i, o in enumerate(outboxes)]

    def job(name: str):  # type: ignore[no-untyped-def]
        async def run() -> str:
            runs.append(name)
            return name

        return run

    for member in members:
        await member.start()
    try:
        for member in members:
            await member.once("cleanup", 3600, job(member.owner))()
        assert len(runs) == 1
        assert {d.state for d in fleet_for(outboxes[0]).daemons()} == {"running"}
    finally:
        for member in members:
            await member.stop()
    assert {d.state for d in fleet_for(outboxes[0]).daemons()} == {"stopped"}


@pytest.mark.postgres
async def test_a_reloaded_daemon_shows_its_new_destinations(
    outboxes: list[PostgresOutbox],
) -> None:
    # After a SIGHUP reload, status still listed the destinations the daemon started with.
    member = FleetMember(outboxes[0], "d-1", ["hook"])
    await member.start()
    try:
        await member.serve(["hook", "crm"])
        [daemon] = PostgresFleet(outboxes[1]).daemons()
        assert daemon.destinations == ["hook", "crm"]
    finally:
        await member.stop()


def test_the_sqlite_fleet_is_this_machine_alone(tmp_path: Path) -> None:
    outbox = open_outbox(f"sqlite:///{tmp_path / 'o.db'}")
    try:
        fleet = fleet_for(outbox)
        assert isinstance(fleet, LocalFleet)
        assert fleet.claim("cleanup", 60, "x", now=T0) is True
        assert fleet.claim("cleanup", 60, "y", now=T0) is True
        assert fleet.daemons() == []
    finally:
        outbox.close()
