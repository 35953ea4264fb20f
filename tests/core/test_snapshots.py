"""Snapshot exports on both engines (a SQLite file, a fresh PostgreSQL schema): the profile
store listed in pages, full and changes runs into a real `files` destination written by the
delivery engine, one audience's members, erasure, the routing they are kept out of, the
config's checks, the fleet-once cron timer and `crossdock exports list/run/history`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from audience_helpers import ENGINES, engine_url
from click.testing import CliRunner
from rich.console import Console

from crossdock.cli import cli
from crossdock.cli import common as snapshots_cli
from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.outbox import Outbox, open_outbox
from crossdock.pipeline import Pipeline, build_pipeline
from crossdock.profiles import ProfileStore
from crossdock.snapshots.run import add_export_timers, export_timer, history, run_export, status
from crossdock.testing.clock import ManualClock

T0 = 1_700_000_000.0
HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}


def config(url: str, folder: Path, **export: Any) -> dict[str, Any]:
    spec = {"destination": "warehouse", **export}
    return {
        "outbox": {"url": url},
        "destinations": {
            "warehouse": {"plugin": "files", "settings": {
                "folder": str(folder), "every": "hourly", "max_rows": 2,
                "path": "profiles/{window_start:%H%M}-{seq}.{ext}"}},
            "hook": HOOK,
        },
        "audiences": {"vip": {"condition": "plan == 'pro'", "destinations": ["hook"]}},
        "exports": {"nightly": spec},
    }


class World:
    """A config with a `files` destination a snapshot export writes to, its outbox, a
    profile store and the clock they share."""

    def __init__(self, url: str, tmp_path: Path, **export: Any) -> None:
        self.folder = tmp_path / "out"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.clock = ManualClock(T0)
        self.raw = config(url, self.folder, **export)
        self.loaded: LoadedConfig = parse_config(self.raw, base_dir=tmp_path, env={})
        self.outbox: Outbox = open_outbox(url)
        self.store = ProfileStore(self.loaded.config.profiles,
                                  db=getattr(self.outbox, "db", None), clock=self.clock)
        self.pipeline: Pipeline = build_pipeline(self.loaded, self.outbox, profiles=self.store)

    def identify(self, user: str, **traits: Any) -> None:
        result = self.pipeline.accept([{"type": "identify", "userId": user, "traits": traits}])
        assert result.accepted and not result.errors, result.errors

    def run(self) -> Any:
        return run_export(self.pipeline, "nightly", store=self.store)

    def deliver(self) -> Any:
        return asyncio.run(deliver_once(self.loaded, self.outbox, clock=self.clock))

    def files(self) -> dict[str, list[dict[str, Any]]]:
        return {str(p.relative_to(self.folder)): [json.loads(line) for line in
                                                  p.read_text().splitlines()]
                for p in sorted(self.folder.rglob("*")) if p.is_file()}

    def users(self) -> list[str]:
        """The userIds of every row in every file, in file order."""
        return [row["userId"] for rows in self.files().values() for row in rows]


@pytest.fixture(params=ENGINES)
def worlds(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:
        def make(name: str = "w", **export: Any) -> World:
            url = stack.enter_context(engine_url(request.param, tmp_path / name))
            (tmp_path / name).mkdir(parents=True, exist_ok=True)
            world = World(url, tmp_path / name, **export)
            stack.callback(world.outbox.close)
            return world
        yield make


def test_the_store_lists_live_profiles_in_pages_exactly_once(worlds: Any) -> None:
    world = worlds()
    for i in range(7):
        world.identify(f"u{i}", plan="pro" if i % 2 else "free")
    # An anonymous visitor who then logs in as u0: their profile is merged into u0's.
    world.pipeline.accept([{"type": "track", "anonymousId": "anon", "event": "Viewed"}])
    world.pipeline.accept([{"type": "identify", "userId": "u0", "anonymousId": "anon"}])
    with world.outbox.transaction() as db:
        every = {r.id for r in world.store.page(db, None, 1000)}
        merged = {str(r[0]) for r in db.execute(
            "SELECT id FROM profiles WHERE merged_into IS NOT NULL").fetchall()}
    assert len(every) == 7 and merged and not merged & every
    seen: list[str] = []
    after = None
    while True:
        with world.outbox.transaction() as db:
            page = world.store.page(db, after, 3)
        if not page:
            break
        assert len(page) <= 3 and [r.id for r in page] == sorted(r.id for r in page)
        seen += [r.id for r in page]
        after = page[-1].id
        if len(seen) == 3:
            # A profile added between pages is listed once or not at all, never twice.
            world.identify("late")
    assert len(seen) == len(set(seen)) and every <= set(seen) and len(seen) <= 8
    world.clock.advance(10)
    world.identify("u3", plan="team")
    with world.outbox.transaction() as db:
        changed = world.store.page(db, None, 100, changed_since=T0 + 5)
        with pytest.raises(ValueError, match="limit"):
            world.store.page(db, None, 0)
    assert [r.user_id for r in changed] == ["u3"]


def test_a_full_run_writes_every_profile_once_in_files_of_max_rows(worlds: Any) -> None:
    world = worlds(attributes=["plan", "email"])
    for i in range(5):
        world.identify(f"u{i}", plan="pro" if i < 2 else "free", email=f"u{i}@example.com",
                       secret="not exported")
    # Events are not routed to a destination a snapshot writes to: its files hold profiles.
    world.pipeline.accept([{"type": "track", "userId": "u0", "event": "Bought"}])
    done = world.run()
    assert (done.state, done.rows, done.files, done.mode) == ("done", 5, 3, "full")
    report = world.deliver()
    assert report.delivered == 5 and report.dead == 0
    files = world.files()
    assert [len(rows) for rows in files.values()] == [2, 2, 1]
    assert sorted(world.users()) == ["u0", "u1", "u2", "u3", "u4"]
    row = next(r for rows in files.values() for r in rows if r["userId"] == "u0")
    assert row["type"] == "profile" and row["export"] == "nightly" and row["run"] == done.id
    assert row["traits"] == {"email": "u0@example.com", "plan": "pro"}
    # The defaults answer for a person who never said.
    assert row["consent"] == {"email": True, "sms": True, "whatsapp": False}
    assert row["audiences"] == {"vip": True}
    with world.outbox.transaction() as db:
        (found,) = status(db, world.loaded, now=world.clock.now + 30)
    name = sorted(files)[-1]
    assert found.last_file is not None and found.last_file.name == name
    assert found.last_file.rows == 1
    assert found.last_file.bytes == (world.folder / name).stat().st_size
    assert (found.waiting, found.dead, found.lag) == (0, 0, 30.0)


def test_a_changes_run_holds_only_the_people_changed_since_the_last_run(worlds: Any) -> None:
    world = worlds(mode="changes")
    for i in range(3):
        world.identify(f"u{i}", plan="free")
    world.clock.advance(120)
    assert world.run().rows == 3  # the first: everyone
    world.clock.advance(30)
    world.identify("u2", plan="team")  # within the overlap: in the next run too
    world.clock.advance(3600)
    world.identify("u1", plan="pro")
    world.identify("new")
    world.clock.advance(120)
    second = world.run()
    assert second.rows == 3 and second.since == T0 + 120 - 60
    world.deliver()
    assert sorted(world.users()) == ["new", "u0", "u1", "u1", "u2", "u2"]
    world.clock.advance(3600)
    assert world.run().rows == 0


def test_an_erased_person_is_in_no_later_export(worlds: Any) -> None:
    world = worlds()
    for user in ("keep", "gone", "also"):
        world.identify(user, plan="pro")
    world.run()  # queued, not yet in a file
    with world.outbox.transaction() as db:
        deleted = world.store.delete(db, "gone")
    assert deleted is not None
    world.deliver()
    assert sorted(world.users()) == ["also", "keep"]
    world.clock.advance(86400)
    world.run()
    world.deliver()
    assert "gone" not in world.users() and sorted(world.users()) == [
        "also", "also", "keep", "keep"]
    with world.outbox.transaction() as db:
        left = db.execute("SELECT COUNT(*) FROM outbox WHERE message_id LIKE '%' || ?",
                          [deleted.profile_id]).fetchone()[0]
    assert left == 0


def test_an_audience_export_holds_its_members_only(worlds: Any) -> None:
    world = worlds(audience="vip", consent=False, audiences=False)
    world.identify("a", plan="pro")
    world.identify("b", plan="free")
    world.identify("c", plan="pro")
    world.run()
    world.deliver()
    rows = [r for rows in world.files().values() for r in rows]
    assert sorted(r["userId"] for r in rows) == ["a", "c"]
    assert all("consent" not in r and "audiences" not in r for r in rows)


def test_a_cron_export_runs_once_per_fire_time_across_daemons(worlds: Any) -> None:
    world = worlds(schedule="0 3 * * *")
    world.identify("u0")
    # Two daemons' timers on one outbox, each with its own pipeline and the same clock.
    other = build_pipeline(world.loaded, open_outbox(world.loaded.outbox_url),
                           profiles=ProfileStore(world.loaded.config.profiles,
                                                 clock=world.clock))
    try:
        timers = [export_timer(p, "nightly", world.store, world.clock)[1]
                  for p in (world.pipeline, other)]

        async def tick() -> list[Any]:
            return list(await asyncio.gather(*(t() for t in timers)))

        assert asyncio.run(tick()) == [None, None]  # T0 is 22:13 UTC: not yet
        world.clock.advance(5 * 3600)  # past 03:00
        ran = [r for r in asyncio.run(tick()) if r is not None]
        assert len(ran) == 1 and ran[0].rows == 1
        assert asyncio.run(tick()) == [None, None]  # that fire time is done
    finally:
        other.outbox.close()
    with world.outbox.transaction() as db:
        assert [r.state for r in history(db, "nightly")] == ["done"]


def test_the_config_names_what_a_snapshot_export_cannot_do(tmp_path: Path) -> None:
    raw = config("sqlite:///x.db", tmp_path)
    raw["exports"] = {
        "a": {"destination": "nowhere"},
        "b": {"destination": "hook"},
        "c": {"destination": "warehouse", "audience": "vips"},
        "d": {"destination": "warehouse", "schedule": "every tuesday"},
        "bad name!": {"destination": "warehouse"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, env={})
    text = str(caught.value)
    assert "exports.a.destination: unknown destination 'nowhere'" in text
    assert "exports.b.destination: 'hook' does not write files" in text
    assert "exports.c.audience: unknown audience 'vips' (known: vip)" in text
    assert "exports.d.schedule" in text and "crontab line" in text
    assert "exports.bad name!: a name is" in text
    raw = config("sqlite:///x.db", tmp_path)
    raw["destinations"]["warehouse"]["settings"]["format"] = "csv"
    with pytest.raises(ConfigError, match="writes csv without columns"):
        parse_config(raw, base_dir=tmp_path, env={})


def test_the_exports_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Room for the table's cells whatever terminal the test process has (an xdist worker's
    # console is 80 columns wide and cut "nightly" to "ni…").
    monkeypatch.setattr(snapshots_cli, "console", Console(width=240, no_color=True))
    folder = tmp_path / "out"
    folder.mkdir()
    raw = config(f"sqlite:///{tmp_path / 'c.db'}", folder)
    path = tmp_path / "crossdock.yaml"
    path.write_text(json.dumps(raw))
    runner = CliRunner()
    loaded = parse_config(raw, base_dir=tmp_path, env={})
    outbox = open_outbox(loaded.outbox_url)
    pipeline = build_pipeline(loaded, outbox)
    pipeline.accept([{"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}])
    outbox.close()
    result = runner.invoke(cli, ["exports", "run", "nightly", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "run 1 (full) queued 1 rows in 1 files for warehouse" in result.output
    result = runner.invoke(cli, ["deliver", "--once", "-c", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["exports", "list", "--json", "-c", str(path)])
    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.output)
    written = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert listed["last_file"]["name"] == f"profiles/{written[0]}"
    assert (listed["last_run"]["rows"], listed["waiting"]) == (1, 0)
    result = runner.invoke(cli, ["exports", "list", "-c", str(path)])
    assert result.exit_code == 0 and "nightly" in result.output, result.output
    result = runner.invoke(cli, ["exports", "history", "-c", str(path)])
    assert result.exit_code == 0 and "done" in result.output
    result = runner.invoke(cli, ["exports", "run", "weekly", "-c", str(path)])
    assert result.exit_code != 0 and "unknown export 'weekly' (known: nightly)" in result.output


def test_an_erasure_while_a_page_is_written_waits_for_it_on_postgresql(
        worlds: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the page holds its profiles' locks until its rows are committed, so an
    erasure that comes in between waits, then deletes the row the page wrote."""
    world = worlds()
    if not world.loaded.outbox_url.startswith("postgresql"):
        pytest.skip("SQLite's transactions exclude each other already")
    for user in ("keep", "gone"):
        world.identify(user)
    from crossdock.snapshots import run as run_module

    real_rows = run_module._rows
    written, go = threading.Event(), threading.Event()

    def rows_then_wait(*args: Any, **kwargs: Any) -> Any:
        out = real_rows(*args, **kwargs)
        written.set()
        assert go.wait(30)
        return out

    monkeypatch.setattr(run_module, "_rows", rows_then_wait)
    other = open_outbox(world.loaded.outbox_url)
    eraser = ProfileStore(world.loaded.config.profiles, clock=world.clock)

    def erase() -> None:
        with other.transaction() as db:
            assert eraser.delete(db, "gone") is not None

    runner = threading.Thread(target=world.run)
    runner.start()
    assert written.wait(30)
    erasing = threading.Thread(target=erase)
    erasing.start()
    try:
        # Until the erasure waits for a profile lock the page holds.
        for _ in range(600):
            with other.transaction() as db:
                waiting = db.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = "
                                     "'advisory' AND NOT granted").fetchone()[0]
            if waiting:
                break
            threading.Event().wait(0.05)
        assert waiting, "the erasure never waited for the page's lock"
    finally:
        go.set()
        runner.join(30)
        erasing.join(30)
        other.close()
    world.deliver()
    assert world.users() == ["keep"]


class RecordingScheduler:
    """Records what `add_export_timers` registers (the daemon's Scheduler takes the same
    call); the timers themselves run for real below."""

    def __init__(self) -> None:
        self.timers: dict[str, tuple[float, Any, bool]] = {}

    def add_timer(self, name: str, seconds: float, fn: Any, *, fleet_once: bool = False
                  ) -> None:
        self.timers[name] = (seconds, fn, fleet_once)


def test_the_daemon_gets_one_fleet_once_timer_per_scheduled_export(worlds: Any) -> None:
    world = worlds(schedule="6h")
    scheduler = RecordingScheduler()
    assert add_export_timers(scheduler, world.pipeline, world.store) == ["export:nightly"]
    seconds, fn, once = scheduler.timers["export:nightly"]
    assert (seconds, once) == (6 * 3600, True)
    world.identify("u1")
    done = asyncio.run(fn())
    assert (done.state, done.rows) == ("done", 1)
    assert add_export_timers(RecordingScheduler(), worlds("b").pipeline, world.store) == []


# Run in a separate process by the test below: a snapshot run that stops, as if its daemon
# hung, once every page is written and before its files are cut; it says so in a file.
_STOPPED_RUN = """
import sys, time
from pathlib import Path
from crossdock.loader import load_config
from crossdock.outbox import open_outbox
from crossdock.pipeline import build_pipeline
from crossdock.snapshots import run

def stop(*args, **kwargs):
    Path(sys.argv[2]).write_text("paged")
    time.sleep(600)

run._cut_files = stop
loaded = load_config(sys.argv[1])
pipeline = build_pipeline(loaded, open_outbox(loaded.outbox_url))
run.run_export(pipeline, "nightly", store=pipeline.profiles)
"""


def test_a_run_killed_before_its_files_are_cut_writes_no_file_and_is_taken_back(
        tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    raw = config(f"sqlite:///{tmp_path / 'c.db'}", folder)
    path = tmp_path / "crossdock.yaml"
    path.write_text(json.dumps(raw))
    loaded = parse_config(raw, base_dir=tmp_path, env={})
    outbox = open_outbox(loaded.outbox_url)
    pipeline = build_pipeline(loaded, outbox)
    pipeline.accept([{"type": "identify", "userId": f"u{i}"} for i in range(5)])
    marker = tmp_path / "paged"
    child = subprocess.Popen([sys.executable, "-c", _STOPPED_RUN, str(path), str(marker)])
    try:
        deadline = time.monotonic() + 60  # only turns a hang into a failure
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the run never paged"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with outbox.transaction() as db:
        (killed,) = history(db)
    assert (killed.state, killed.rows) == ("running", 5)
    # Its rows are held: the window worker, even long after the run's window, writes nothing.
    later = ManualClock(time.time() + 7 * 24 * 3600)
    report = asyncio.run(deliver_once(loaded, outbox, clock=later))
    assert report.delivered == 0 and not list(folder.rglob("*.*"))
    # The next run of the export finds it stopped, takes its rows back and writes its own.
    store = ProfileStore(loaded.config.profiles, db=outbox.db, clock=later)  # type: ignore[attr-defined]
    done = run_export(build_pipeline(loaded, outbox, profiles=store), "nightly", store=store)
    assert done is not None and (done.state, done.rows) == ("done", 5)
    with outbox.transaction() as db:
        killed = next(run for run in history(db) if run.id == killed.id)
    assert killed.state == "failed" and "interrupted" in (killed.error or "")
    report = asyncio.run(deliver_once(loaded, outbox, clock=later))
    assert report.delivered == 5
    users = [json.loads(line)["userId"] for p in folder.rglob("*.*")
             for line in p.read_text().splitlines()]
    assert sorted(users) == [f"u{i}" for i in range(5)]
    outbox.close()
