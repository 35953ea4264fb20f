"""Audiences with several daemons on one outbox.

- Membership stays exact when messages of the same people reach several processes at the same
  moment, while another process runs full syncs: real processes, each with its own pipeline
  (accept -> profile -> audience watch -> route -> outbox), released together by a barrier.
  Afterwards every person is a member exactly when their stored attributes say so, and each
  person's changes alternate entered / exited, each routed once. On PostgreSQL this is what
  the profile locks plus the audiences' shared / exclusive advisory locks are for; on SQLite
  the same holds because its writers take turns.
- A scheduled sync runs once across the fleet: two `crossdock run` daemons (run_daemon in two
  processes) on one PostgreSQL outbox, each with the audience's timer; and a cron-scheduled
  sync whose time has come on two daemons at once runs on one of them.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audience_helpers import ENGINES, PG_URL, engine_url, members, outbox_rows, pg_unreachable

from crossdock.audiences import membership
from crossdock.audiences.spec import audiences_of
from crossdock.audiences.sync import sync, sync_timer
from crossdock.config import LoadedConfig
from crossdock.fleet import fleet_for
from crossdock.loader import parse_config
from crossdock.outbox import open_outbox
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.pipeline import build_pipeline
from crossdock.profiles import ProfileStore

HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}
WRITERS = 3
ROUNDS = 20
PEOPLE = 4  # per batch
THRESHOLD = 500


def config(url: str, base: Path, **audience: Any) -> LoadedConfig:
    return parse_config({
        "outbox": {"url": url},
        "collector": {"enabled": False},
        "destinations": {"fb": HOOK, "mc": HOOK},
        "audiences": {"high_value": {"condition": f"lifetime_value > {THRESHOLD}",
                                     "destinations": ["fb", "mc"], **audience}},
    }, base_dir=base, env={})


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with engine_url(request.param, tmp_path) as found:
        yield found


def writer(url: str, base: str, k: int, barrier: Any, syncing: Any, results: Any) -> None:
    """One daemon's accepting side: every round, one batch of identifies of the same people
    (in this process's own order) moving each across the threshold one way or the other."""
    try:
        pipeline = build_pipeline(config(url, Path(base)))
        # Not before the syncer runs: on a loaded machine it could start after the writers
        # were done, and the race would have had no full sync in it.
        assert syncing.wait(timeout=120), "the syncer did not start"
        for r in range(ROUNDS):
            order = list(range(PEOPLE))
            order = order[k % PEOPLE:] + order[:k % PEOPLE]
            if k % 2:
                order.reverse()
            barrier.wait(timeout=120)
            result = pipeline.accept([
                {"type": "identify", "userId": f"u{p}", "messageId": f"w{k}-r{r}-p{p}",
                 "traits": {"email": f"p{p}@example.com",
                            "lifetime_value": 900 if (r + k + p) % 2 else 100}}
                for p in order])
            assert len(result.accepted) == PEOPLE and not result.errors, result
        pipeline.close()
        results.put((k, "ok", ""))
    except BaseException as exc:  # reported to the test, which names it
        barrier.abort()
        results.put((k, "error", f"{type(exc).__name__}: {exc}"))


def syncer(url: str, base: str, syncing: Any, stop: Any, results: Any) -> None:
    """Another daemon running full syncs back to back meanwhile (at least one, begun before
    the writers start)."""
    try:
        pipeline = build_pipeline(config(url, Path(base)))
        runs = 0
        syncing.set()
        while True:
            sync(pipeline)
            runs += 1
            if stop.is_set():
                break
        pipeline.close()
        results.put(("syncer", "ok", str(runs)))
    except BaseException as exc:
        results.put(("syncer", "error", f"{type(exc).__name__}: {exc}"))


def test_membership_stays_exact_under_concurrent_updates(url: str, tmp_path: Path) -> None:
    # spawn, not fork: a forked child copies locks held by the test process's other threads
    # (servers of earlier tests) and once hung on one in CI, breaking the barrier.
    ctx = multiprocessing.get_context("spawn")
    barrier, stop, results = ctx.Barrier(WRITERS), ctx.Event(), ctx.Queue()
    syncing = ctx.Event()
    open_outbox(url).close()  # schema in place before the race (as `crossdock db upgrade`)
    procs = [ctx.Process(target=writer,
                         args=(url, str(tmp_path), k, barrier, syncing, results))
             for k in range(WRITERS)]
    full = ctx.Process(target=syncer, args=(url, str(tmp_path), syncing, stop, results))
    for proc in [*procs, full]:
        proc.start()
    reports: dict[Any, tuple[str, str]] = {}
    try:
        for _ in procs:
            k, status, detail = results.get(timeout=300)
            reports[k] = (status, detail)
        stop.set()
        k, status, detail = results.get(timeout=120)
        reports[k] = (status, detail)
    except queue.Empty:
        pass
    finally:
        stop.set()
        for proc in [*procs, full]:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert len(reports) == WRITERS + 1, reports
    assert all(status == "ok" for status, _ in reports.values()), reports
    assert int(reports["syncer"][1]) >= 1

    outbox = open_outbox(url)
    loaded = config(url, tmp_path)
    store = ProfileStore(loaded.config.profiles, db=getattr(outbox, "db", None))
    try:
        with outbox.transaction() as db:  # type: ignore[attr-defined]
            inside = set()
            for p in range(PEOPLE):
                profile = store.show(db, f"u{p}")
                assert profile is not None
                value = profile["attributes"]["custom"]["lifetime_value"]["value"]
                if value > THRESHOLD:
                    inside.add(f"u{p}")
            changes = db.execute(
                "SELECT c.id, p.user_id, c.kind FROM audience_changes c "
                "JOIN profiles p ON p.id = c.profile_id ORDER BY c.id").fetchall()
            # A last full sync finds nothing left to change.
            assert membership.plan(db, audiences_of(loaded.config)).changes == []
        assert members(outbox, "high_value") == inside
        kinds: dict[str, list[str]] = {}
        for _, user, kind in changes:
            kinds.setdefault(str(user), []).append(str(kind))
        for user, seq in kinds.items():
            # entered, exited, entered, ...: never twice the same way in a row
            assert seq == ["entered", "exited"] * (len(seq) // 2) + ["entered"] * (len(seq) % 2)
            assert (seq[-1] == "entered") == (user in inside), (user, seq)
        assert sum(len(seq) for seq in kinds.values()) >= PEOPLE  # the race did move people
        rows = outbox_rows(outbox)
        for destination in ("fb", "mc"):
            ids = sorted(p["messageId"] for d, p in rows
                         if d == destination and p.get("event") in (
                             "audience_entered", "audience_exited"))
            assert ids == sorted(f"audience_{kind}-{cid}" for cid, _, kind in changes)
    finally:
        outbox.close()


def test_a_cron_sync_due_on_two_daemons_at_once_runs_on_one(url: str, tmp_path: Path) -> None:
    """Both daemons find the 03:00 sync due (say, the first one's sync outlasted the claim
    interval): the second one's check, repeated under the audience's lock, says it ran."""
    loaded = config(url, tmp_path, schedule="0 3 * * *", sync_on_change=False)
    t0 = 1_700_000_000.0  # 22:13 UTC; the next 03:00 is about five hours later
    now = [t0]
    pipelines = []
    for _ in range(2):
        outbox = open_outbox(url)
        store = ProfileStore(loaded.config.profiles, db=getattr(outbox, "db", None),
                             clock=lambda: now[0])
        pipelines.append(build_pipeline(loaded, outbox, profiles=store))
    try:
        for i in range(5):
            pipelines[0].accept([{"type": "identify", "userId": f"u{i}",
                                  "traits": {"lifetime_value": 900}}])
        audience = audiences_of(loaded.config)[0]
        timers = [sync_timer(p, audience, clock=lambda: now[0])[1] for p in pipelines]
        now[0] = t0 + 6 * 3600
        barrier = threading.Barrier(2)
        reports: list[Any] = [None, None]

        def run(i: int) -> None:
            barrier.wait(30)
            try:
                reports[i] = asyncio.run(timers[i]())
            except Exception as exc:  # named by the assertion below
                reports[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not [r for r in reports if isinstance(r, Exception)], reports
        done = [r for r in reports if r is not None]
        assert len(done) == 1, reports
        assert done[0].entered == {"high_value": 5}
        assert members(pipelines[0].outbox, "high_value") == {f"u{i}" for i in range(5)}
    finally:
        for p in pipelines:
            p.outbox.close()


SCHEDULE = 2.0
RUNS = 3


def daemon(url: str, base: str, log_path: str) -> None:
    """`crossdock run` in this process, recording each full sync it runs (start time)."""
    from crossdock.audiences import sync as sync_module
    from crossdock.daemon import run_daemon

    real = sync_module.sync_if

    def recording(*args: Any, **kwargs: Any) -> Any:
        started = time.time()
        report = real(*args, **kwargs)
        if report is not None:
            with open(log_path, "a") as out:
                out.write(f"{started} {os.getpid()}\n")
        return report

    sync_module.sync_if = recording  # type: ignore[assignment]
    asyncio.run(run_daemon(config(url, Path(base), schedule=f"{SCHEDULE:g}s",
                                  sync_on_change=False), poll_interval=0.2))


@pytest.mark.postgres
def test_a_scheduled_sync_runs_once_across_two_daemons(tmp_path: Path) -> None:
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with temporary_schema(PG_URL, "crossdock_audiences") as url:
        loaded = config(url, tmp_path, schedule=f"{SCHEDULE:g}s", sync_on_change=False)
        pipeline = build_pipeline(loaded)
        pipeline.accept([{"type": "identify", "userId": f"u{i}",
                          "traits": {"lifetime_value": 900}} for i in range(5)])
        pipeline.close()
        log_path = tmp_path / "syncs.log"
        ctx = multiprocessing.get_context("spawn")  # not fork: see above
        procs = [ctx.Process(target=daemon, args=(url, str(tmp_path), str(log_path)))
                 for _ in range(2)]
        for proc in procs:
            proc.start()
        try:
            # Until three syncs ran (each daemon alone would run one every 2 s), with both
            # daemons up the whole time; a generous deadline, not a speed assertion.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if log_path.exists() and len(log_path.read_text().splitlines()) >= RUNS:
                    break
                time.sleep(0.1)
            outbox = open_outbox(url)
            try:
                running = [d for d in fleet_for(outbox).daemons() if d.state == "running"]
            finally:
                outbox.close()
            assert len(running) == 2, running
            for proc in procs:
                assert proc.is_alive()
                os.kill(proc.pid or 0, signal.SIGTERM)
        finally:
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
        assert all(proc.exitcode == 0 for proc in procs)
        runs = sorted(float(line.split()[0]) for line in log_path.read_text().splitlines())
        # One claim per 90% of the interval across the fleet: never two runs close together
        # (without the claim, both daemons' timers fire within the same second).
        assert len(runs) >= RUNS, runs
        gaps = [b - a for a, b in itertools.pairwise(runs)]
        assert min(gaps) > SCHEDULE * 0.9 - 0.5, gaps
        outbox = open_outbox(url)
        try:
            assert members(outbox, "high_value") == {f"u{i}" for i in range(5)}
            entered = [d for d, p in outbox_rows(outbox) if p.get("event") == "audience_entered"]
            assert sorted(entered) == ["fb"] * 5 + ["mc"] * 5
        finally:
            outbox.close()
