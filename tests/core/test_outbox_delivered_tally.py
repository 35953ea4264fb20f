"""The delivered tally (outbox_stats.delivered, m008_fast_counts / pg_018_fast_counts) stays
equal to the delivered rows plus the forgotten ones (docs/architecture.md: "Every change into
or out of `delivered` must keep that tally") on the paths a review found it broke: a copy into
a target in use, a PostgreSQL cleanup racing a replay of delivered rows (which also lost the
replayed message), and counts read while an ack commits.

SQLite: a file in tmp_path; PostgreSQL: a fresh schema of the `test` database on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_helpers import PG_URL, pg_unreachable

from crossdock.outbox import NewRow, Outbox, open_outbox
from crossdock.outbox.base import RowQuery, shared_sql
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.schema import copy_database

T0 = 1_700_000_000.0


def _pg_schema() -> Iterator[str]:
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with temporary_schema(PG_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
    else:
        yield from _pg_schema()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_schema()


def wait_blocked_by(pid: int, what: str) -> None:
    """Until some session waits on a lock held by backend `pid` (a condition, no sleep the
    test depends on)."""
    with psycopg.connect(PG_URL, autocommit=True) as watcher:
        deadline = time.monotonic() + 20
        while not watcher.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [pid]).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, f"{what} never waited"
            time.sleep(0.01)


def tally(outbox: Outbox) -> dict[str, tuple[int, int]]:
    """Per destination: (outbox_stats.delivered, delivered rows + delivered_forgotten)."""
    with outbox.transaction() as tx:
        db = shared_sql(tx)
        stats = {str(d): (int(t), int(f)) for d, t, f in db.execute(
            "SELECT destination, delivered, delivered_forgotten FROM outbox_stats").fetchall()}
        rows = {str(d): int(n) for d, n in db.execute(
            "SELECT destination, COUNT(*) FROM outbox WHERE state = 'delivered' "
            "GROUP BY destination").fetchall()}
    return {d: (stats.get(d, (0, 0))[0], rows.get(d, 0) + stats.get(d, (0, 0))[1])
            for d in sorted(set(stats) | set(rows))}


def deliver(outbox: Outbox, destination: str, *ids: str, at: float) -> None:
    outbox.enqueue([NewRow(destination, m, {"n": m}) for m in ids], now=at)
    leased = outbox.lease(destination, len(ids), 30, "w", now=at)
    assert outbox.ack([i.id for i in leased], "w", now=at) == len(ids)


def test_db_copy_include_delivered_into_a_target_in_use_keeps_the_tally(
        tmp_path: Path, target_url: str) -> None:
    # core/outbox/copy.py's _copy_stats writes a destination's figures only
    # when the target has none (ON CONFLICT DO NOTHING, "a target in use keeps its own"),
    # but --include-delivered still copies the source's delivered rows into it: they are
    # in the table and in no tally, so `crossdock status` under-counts them (before m008
    # it counted the rows).
    source = open_outbox(f"sqlite:///{tmp_path / 'source.db'}")
    target = open_outbox(target_url)
    try:
        deliver(source, "a", "s1", "s2", at=T0)
        deliver(target, "a", "t1", at=T0)  # the target's own history of 'a'
        copy_database(source, target, include_delivered=True, profiles="skip")
        assert tally(target)["a"] == (3, 3)
        assert target.counts()["a"].delivered == 3
    finally:
        source.close()
        target.close()


@pytest.mark.postgres
def test_pg_cleanup_racing_replay_delivered_keeps_the_requeued_row(pg_url: str) -> None:
    # core/outbox/postgres.py's cleanup deleted
    # `WHERE id IN (SELECT id ... WHERE state = 'delivered' ... LIMIT n)`. A `replay
    # --delivered` (requeue) that updated the row first and commits while the DELETE waits
    # for the row lock: PostgreSQL re-checks only `id IN (<the subquery's old rows>)`, not
    # the state, so the now-queued row is deleted (the message is lost) and counted as
    # forgotten, while the requeue already took it off the tally: tally = rows + forgotten - 1.
    first, second = open_outbox(pg_url), open_outbox(pg_url)
    try:
        deliver(first, "a", "m1", at=T0)
        (row,) = first.find_rows(RowQuery("delivered", "a"))
        assert tally(first)["a"] == (1, 1)
        cleaned: list[int] = []
        with first.transaction() as tx:
            (pid,) = tx.conn.execute("SELECT pg_backend_pid()").fetchone()  # type: ignore[attr-defined]
            assert first.requeue("delivered", [(row.id, None)], now=T0 + 100) == 1
            # Its updated_at is now T0 + 100: a cleanup of rows delivered before T0 + 50
            # must leave it alone.
            worker = threading.Thread(target=lambda: cleaned.append(second.cleanup(T0 + 50)))
            worker.start()
            wait_blocked_by(pid, "cleanup")
        worker.join(20)
        assert not worker.is_alive()
        after = tally(first)
        found = first.row("a", "m1")
        assert found is not None and found["state"] == "queued", (
            f"cleanup deleted the requeued row (forgot {cleaned}; tally, rows + forgotten: "
            f"{after})")
        assert after["a"][0] == after["a"][1]
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_pg_counts_are_of_one_moment_while_an_ack_commits(pg_url: str) -> None:
    # core/outbox/postgres.py's counts() ran COUNTS_QUERIES and
    # COUNTS_STATS_SQL as separate statements of a READ COMMITTED transaction, so an ack that
    # commits between the outbox_waiting query and the outbox_stats read counts its row
    # twice (leased, and again in the delivered tally). The SQLite counts() reads in one
    # transaction for exactly this reason ("a settle between two of the queries would count
    # a row twice or not at all"); the PostgreSQL one does not.
    first, second = open_outbox(pg_url), open_outbox(pg_url)
    try:
        first.enqueue([NewRow("a", "m1", {"n": 1})], now=T0)
        (item,) = first.lease("a", 1, 30, "w", now=T0)
        found: list[tuple[int, int]] = []

        def read() -> None:
            c = second.counts()["a"]
            found.append((c.leased, c.delivered))

        with first.transaction() as tx:
            conn = tx.conn  # type: ignore[attr-defined]
            (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
            # Hold the stats table so counts() stops right before reading it ...
            conn.execute("LOCK TABLE outbox_stats IN ACCESS EXCLUSIVE MODE")
            # ... while the ack is made in this transaction (it joins it).
            assert first.ack([item.id], "w", now=T0 + 1) == 1
            worker = threading.Thread(target=read)
            worker.start()
            wait_blocked_by(pid, "counts")
        worker.join(20)
        assert not worker.is_alive()
        # Either before the ack (1 leased, 0 delivered) or after it (0, 1); never both.
        assert found and sum(found[0]) == 1, f"(leased, delivered) = {found}"
    finally:
        first.close()
        second.close()
