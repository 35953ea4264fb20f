"""Messages of one person reaching several daemons at the same moment.

Real processes, each with its own pipeline (accept -> profile -> route -> outbox) on one
database: first every process sends an anonymous message for its own device of each person
(a0-n, a1-n, a2-n with an attribute of that process), then, released together by a barrier,
every process identifies its device as userId u-n, in a batch of several people whose order
differs per process; last, every process sends the same messageId. Afterwards there must be
exactly one known profile per person, holding every device and every attribute, each
anonymous profile merged into it exactly once, and each shared messageId accepted once.

On PostgreSQL this is what the advisory locks of crossdock.profiles.store are for; on SQLite
the same assertions hold because its writers take turns."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crossdock.dedup import Dedup, request_key
from crossdock.loader import parse_config
from crossdock.outbox import open_outbox
from crossdock.outbox.locks import lock_id
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.pipeline import build_pipeline
from crossdock.profiles import ProfileStore

PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PROCESSES = 3
ROUNDS = 12
PEOPLE = 3  # per round, in one batch


def pg_unreachable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crossdock.db'}"
        return
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with temporary_schema(PG_URL, "crossdock_race") as found:
        yield found


def config(url: str, base: Path) -> Any:
    return parse_config({
        "outbox": {"url": url},
        "destinations": {"hook": {"plugin": "webhook", "settings": {
            "url": "http://127.0.0.1:9/hook"}, "delivery": {"allow_private_network": True}}},
    }, base_dir=base, env={})


def person(round_: int, n: int) -> int:
    return round_ * PEOPLE + n


def worker(url: str, base: str, k: int, barrier: Any, results: Any) -> None:
    """One daemon's accepting side: ROUNDS rounds of (anonymous batch, barrier, identify
    batch, barrier, the shared messageId)."""
    try:
        pipeline = build_pipeline(config(url, Path(base)))
        accepted_shared = 0
        for r in range(ROUNDS):
            people = [person(r, n) for n in range(PEOPLE)]
            result = pipeline.accept([
                {"type": "track", "event": "Viewed", "anonymousId": f"a{k}-{p}",
                 "messageId": f"view-{k}-{p}", "context": {"traits": {f"seen_by_{k}": p}}}
                for p in people
            ])
            assert len(result.accepted) == PEOPLE, result
            barrier.wait(timeout=120)
            # Each process walks the people in its own order: locks must not deadlock.
            order = people if k % 2 == 0 else people[::-1]
            order = order[k % PEOPLE:] + order[:k % PEOPLE]
            result = pipeline.accept([
                {"type": "identify", "anonymousId": f"a{k}-{p}", "userId": f"u-{p}",
                 "messageId": f"identify-{k}-{p}", "sessionId": f"s-{p}",
                 "traits": {f"plan_{k}": "pro", "email": f"p{p}@example.com"}}
                for p in order
            ])
            assert len(result.accepted) == PEOPLE, result
            barrier.wait(timeout=120)
            result = pipeline.accept([{"type": "track", "event": "Shared", "userId": f"u-{r}",
                                       "messageId": f"shared-{r}"}])
            accepted_shared += len(result.accepted)
        pipeline.close()
        results.put((k, "ok", accepted_shared))
    except BaseException as exc:  # reported to the test, which names it
        barrier.abort()
        results.put((k, "error", f"{type(exc).__name__}: {exc}"))


def test_one_person_on_many_daemons_at_once(url: str, tmp_path: Path) -> None:
    # spawn, not fork: a forked child copies locks held by the test process's other threads
    # (servers of earlier tests) and once hung on one in CI, breaking the barrier.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    open_outbox(url).close()  # schema in place before the race (as `crossdock db upgrade`)
    procs = [ctx.Process(target=worker, args=(url, str(tmp_path), k, barrier, results))
             for k in range(PROCESSES)]
    for proc in procs:
        proc.start()
    reports = {}
    for _ in procs:
        try:
            k, status, detail = results.get(timeout=300)
        except queue.Empty:
            break
        reports[k] = (status, detail)
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    assert all(status == "ok" for status, _ in reports.values()), reports
    assert len(reports) == PROCESSES
    # Each shared messageId was accepted by exactly one of the processes.
    assert sum(int(detail) for _, detail in reports.values()) == ROUNDS

    outbox = open_outbox(url)
    store = ProfileStore(db=getattr(outbox, "db", None))
    try:
        with outbox.transaction() as db:  # type: ignore[attr-defined]
            people = ROUNDS * PEOPLE
            stats = store.stats(db)
            assert (stats["profiles_known"], stats["profiles_anonymous"]) == (people, 0)
            assert stats["merges"] == people * (PROCESSES - 1)
            # No profile was merged away twice, none merged into a profile that is gone.
            twice = db.execute("SELECT from_profile FROM profile_merges GROUP BY from_profile "
                               "HAVING COUNT(*) > 1").fetchall()
            assert twice == []
            for p in range(people):
                profile = store.show(db, f"u-{p}")
                assert profile is not None
                assert sorted(profile["identities"]["anonymousId"]) == [
                    f"a{k}-{p}" for k in range(PROCESSES)]
                assert profile["identities"]["email"] == [f"p{p}@example.com"]
                for k in range(PROCESSES):
                    assert store.find(db, f"a{k}-{p}") == profile["id"]
                custom = {n: v["value"] for n, v in profile["attributes"]["custom"].items()}
                assert custom == ({f"seen_by_{k}": p for k in range(PROCESSES)}
                                  | {f"plan_{k}": "pro" for k in range(PROCESSES)})
                shared = 1 if p < ROUNDS else 0
                assert profile["messages"] == 2 * PROCESSES + shared
                assert len(profile["merges"]) == PROCESSES - 1
                # All identifies carried one sessionId: one session, every message in it.
                assert [(s["sessionId"], s["messages"]) for s in profile["sessions"]] == [
                    (f"s-{p}", PROCESSES)]
    finally:
        outbox.close()


@pytest.mark.postgres
def test_a_request_id_waits_for_the_transaction_that_holds_it() -> None:
    """Two collectors get one x-request-id at once: the second one's check waits until the
    first commits, then sees it (without the lock both would accept the request)."""
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with temporary_schema(PG_URL, "crossdock_race") as url:
        first, second = open_outbox(url), open_outbox(url)
        dedup = Dedup(window=3600)
        key = request_key("k1", "req-1")
        holding, release = threading.Event(), threading.Event()
        answers: dict[str, bool] = {}

        def one() -> None:
            with first.transaction() as db:  # type: ignore[attr-defined]
                answers["first"] = dedup.seen(db, key, 100.0)
                dedup.remember(db, key, 100.0)
                holding.set()
                release.wait(60)

        def two() -> None:
            with second.transaction() as db:  # type: ignore[attr-defined]
                answers["second"] = dedup.seen(db, key, 101.0)

        a = threading.Thread(target=one)
        a.start()
        assert holding.wait(60)
        b = threading.Thread(target=two)
        b.start()
        # Wait (by state, not by time) until the second transaction queues on the lock.
        number = lock_id(f"dedup:{key}") & 0xFFFFFFFFFFFFFFFF
        with psycopg.connect(PG_URL, autocommit=True) as watch:
            while True:
                row = watch.execute(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND classid::text::bigint = %s AND objid::text::bigint = %s",
                    [number >> 32, number & 0xFFFFFFFF]).fetchone()
                if row is not None and row[0]:
                    break
                assert b.is_alive() and "second" not in answers
                threading.Event().wait(0.02)
        assert "second" not in answers
        release.set()
        a.join(60)
        b.join(60)
        assert answers == {"first": False, "second": True}
        first.close()
        second.close()
