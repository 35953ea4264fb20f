"""Audience syncs through the real pipeline, profile store and route step, on both engines
(a SQLite outbox and a PostgreSQL one): who enters and leaves, on change and in full syncs,
what the events carry, and that they reach only the audience's destinations."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from audience_helpers import ENGINES, engine_url, members, outbox_rows

from crossdock.audiences import membership
from crossdock.audiences.spec import audiences_of
from crossdock.audiences.sync import AudienceWatch, add_sync_timers, plan_sync, sync
from crossdock.config import LoadedConfig
from crossdock.loader import parse_config
from crossdock.outbox import Outbox, open_outbox
from crossdock.pipeline import Pipeline, build_pipeline
from crossdock.profiles import ProfileStore, sweep_and_route
from crossdock.profiles.dictionary import DictionaryWatch

HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}
T0 = 1_700_000_000.0


class World:
    """A config with three webhooks (two in the audience), its outbox and a clock."""

    def __init__(self, url: str, tmp_path: Path, **audience: Any) -> None:
        self.now = T0
        tmp_path.mkdir(parents=True, exist_ok=True)
        spec = {"condition": "lifetime_value > 500", "destinations": ["fb", "mc"],
                **audience}
        self.loaded: LoadedConfig = parse_config({
            "outbox": {"url": url},
            "destinations": {"fb": HOOK, "mc": HOOK, "everything": HOOK},
            "audiences": {"high_value": spec},
        }, base_dir=tmp_path, env={})
        self.outbox: Outbox = open_outbox(url)
        self.store = ProfileStore(self.loaded.config.profiles,
                                  db=getattr(self.outbox, "db", None), clock=lambda: self.now)
        self.pipeline: Pipeline = build_pipeline(self.loaded, self.outbox, profiles=self.store)

    def identify(self, user: str, **traits: Any) -> None:
        result = self.pipeline.accept([{"type": "identify", "userId": user, "traits": traits}])
        assert result.accepted and not result.errors, result.errors

    def rows(self, destination: str | None = None, event: str | None = None
             ) -> list[dict[str, Any]]:
        out = []
        for dest, data in outbox_rows(self.outbox):
            if destination not in (None, dest):
                continue
            if event is not None and data.get("event") != event:
                continue
            out.append({"destination": dest, **data})
        return out

    def members(self) -> set[str]:
        return members(self.outbox, "high_value")


class Worlds:
    """Makes Worlds on one engine (each in its own database) and closes them."""

    def __init__(self, engine: str, tmp_path: Path, stack: ExitStack) -> None:
        self.engine, self.tmp_path, self.stack = engine, tmp_path, stack

    def __call__(self, name: str = "w", **audience: Any) -> World:
        url = self.stack.enter_context(engine_url(self.engine, self.tmp_path / name))
        world = World(url, self.tmp_path / name, **audience)
        self.stack.callback(world.outbox.close)
        self.stack.callback(world.pipeline.close)
        return world


@pytest.fixture(params=ENGINES)
def worlds(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Worlds]:
    with ExitStack() as stack:
        yield Worlds(request.param, tmp_path, stack)


@pytest.fixture
def world(worlds: Worlds) -> World:
    return worlds()


def test_on_change_enter_and_exit_reach_only_the_audiences_destinations(world: World) -> None:
    assert [type(w) for w in world.pipeline.watchers] == [DictionaryWatch, AudienceWatch]
    world.identify("u1", email="Ann@Example.com", firstName="Ann", lifetime_value=100)
    assert world.rows(event="audience_entered") == []
    world.identify("u1", lifetime_value=700)
    entered = world.rows(event="audience_entered")
    assert {r["destination"] for r in entered} == {"fb", "mc"}
    payload = entered[0]
    assert payload["type"] == "track"
    assert payload["properties"] == {"audience": "high_value"}
    assert payload["userId"] == "u1"
    assert payload["traits"]["email"] == "Ann@Example.com"
    assert payload["traits"]["firstName"] == "Ann"
    assert payload["identities"]["email"] == "ann@example.com"
    assert payload["messageId"].startswith("audience_entered-")
    # The identify that caused it is routed first, then an identify of the person for the
    # audience's destinations (Mailchimp upserts the member before it tags them).
    mc = world.rows("mc")
    assert [r["type"] for r in mc] == ["identify", "identify", "identify", "track"]
    assert mc[2]["messageId"] == "audience_identify-1"
    assert mc[2]["traits"]["email"] == "Ann@Example.com"
    assert [r["type"] for r in world.rows("everything")] == ["identify", "identify"]
    assert world.members() == {"u1"}

    world.identify("u1", lifetime_value=800)  # still inside: nothing new
    assert len(world.rows(event="audience_entered")) == 2
    assert world.rows(event="audience_exited") == []

    world.identify("u1", email="ann@new.example", lifetime_value=20)
    exited = world.rows(event="audience_exited")
    assert {r["destination"] for r in exited} == {"fb", "mc"}
    # The exit carries what the person entered with: the destination removes that row.
    assert exited[0]["traits"]["email"] == "Ann@Example.com"
    assert world.members() == set()
    assert world.rows("everything", "audience_entered") == []


def test_full_sync_finds_what_on_change_did_not_see(worlds: Worlds) -> None:
    world = worlds(sync_on_change=False)
    assert [type(w) for w in world.pipeline.watchers] == [DictionaryWatch]
    for i, value in enumerate([100, 600, 900, None]):
        traits = {"email": f"p{i}@example.com"}
        if value is not None:
            traits["lifetime_value"] = value
        world.identify(f"u{i}", **traits)
    assert world.rows(event="audience_entered") == []
    with world.outbox.transaction() as db:
        preview = plan_sync(db, audiences_of(world.loaded.config))
    assert sorted(c.kind for c in preview.changes) == ["entered", "entered"]
    assert world.members() == set()  # a preview changes nothing

    report = sync(world.pipeline)
    assert report.evaluated == 4
    assert report.entered == {"high_value": 2} and report.exited == {"high_value": 0}
    assert report.rows == 8  # two people, two destinations, an identify and an entry each
    assert world.members() == {"u1", "u2"}
    assert sync(world.pipeline).rows == 0  # nothing changed since

    world.identify("u2", lifetime_value=10)
    world.identify("u3", lifetime_value=501)
    report = sync(world.pipeline)
    assert (report.entered, report.exited) == ({"high_value": 1}, {"high_value": 1})
    assert world.members() == {"u1", "u3"}
    with world.outbox.transaction() as db:
        assert membership.last_sync(db, "high_value") == world.now


def test_rows_keep_the_routing_order(world: World) -> None:
    """A person's audience events reach a destination in the order they happened: the
    identify before the entry, an exit before the entry after it."""
    world.pipeline.accept([
        {"type": "identify", "userId": "u1", "messageId": f"m{i}",
         "traits": {"email": "a@example.com", "lifetime_value": value}}
        for i, value in enumerate([600, 10, 700, 20] * 3)])
    events = [r["event"] for r in world.rows("fb") if r["type"] == "track"]
    assert events == ["audience_entered", "audience_exited"] * 6
    mc = [r["messageId"].split("-")[0] for r in world.rows("mc")
          if r["messageId"].startswith("audience_")]
    assert mc == ["audience_identify", "audience_entered", "audience_exited"] * 6


def test_message_ids_are_unique_per_change(world: World) -> None:
    for value in (600, 10, 700, 20, 800):
        world.identify("u1", email="a@example.com", lifetime_value=value)
    changes = [r for r in world.rows("fb") if r["type"] == "track"]
    ids = [r["messageId"] for r in changes]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert [r["event"] for r in changes] == [
        "audience_entered", "audience_exited", "audience_entered", "audience_exited",
        "audience_entered"]


def test_a_merge_keeps_one_membership(world: World) -> None:
    # An anonymous visitor enters; logging in merges them into the known profile.
    world.pipeline.accept([{"type": "identify", "anonymousId": "anon-1",
                            "traits": {"email": "x@example.com", "lifetime_value": 900}}])
    assert len(world.rows("fb", "audience_entered")) == 1
    world.pipeline.accept([{"type": "identify", "anonymousId": "anon-1", "userId": "u9",
                            "traits": {"plan": "pro"}}])
    assert world.members() == {"u9"}
    assert world.rows(event="audience_exited") == []
    assert len(world.rows("fb", "audience_entered")) == 1
    assert sync(world.pipeline).rows == 0


def test_an_erased_person_leaves_at_the_next_full_sync(world: World) -> None:
    world.identify("u1", email="gone@example.com", lifetime_value=900)
    with world.outbox.transaction() as db:
        deleted = world.store.delete(db, "u1")
    assert deleted is not None
    report = sync(world.pipeline)
    assert report.exited == {"high_value": 1}
    exited = world.rows("fb", "audience_exited")
    assert exited[0]["traits"]["email"] == "gone@example.com"
    assert world.members() == set()


def test_the_watch_keeps_the_session_sweep_working(world: World) -> None:
    world.pipeline.accept([{"type": "track", "userId": "u1", "sessionId": "s1",
                            "event": "Viewed"}])
    world.now += 3600
    assert sweep_and_route(world.pipeline, world.pipeline.profiles) == 1  # type: ignore[arg-type]


def test_events_respect_the_destinations_event_filter(worlds: Worlds) -> None:
    with engine_url(worlds.engine, worlds.tmp_path) as url:
        loaded = parse_config({
            "outbox": {"url": url},
            "destinations": {"fb": {**HOOK, "filter": {"events": {"allow": ["Order Completed"]}}},
                             "mc": HOOK},
            "audiences": {"vip": {"condition": "vip", "destinations": ["fb", "mc"]}},
        }, base_dir=worlds.tmp_path, env={})
        outbox = open_outbox(url)
        pipeline = build_pipeline(loaded, outbox)
        try:
            pipeline.accept([{"type": "identify", "userId": "u1", "traits": {"vip": True}}])
            routed = [(d, p.get("event")) for d, p in outbox_rows(outbox)]
        finally:
            pipeline.close()
            outbox.close()
    # The operator's allow list on fb does not name audience_entered: it stays out.
    assert routed == [("fb", None), ("mc", None), ("fb", None), ("mc", None),
                      ("mc", "audience_entered")]


class FakeScheduler:
    def __init__(self) -> None:
        self.timers: dict[str, tuple[float, Any, bool]] = {}

    def add_timer(self, name: str, seconds: float, fn: Any, *, fleet_once: bool = False
                  ) -> None:
        self.timers[name] = (seconds, fn, fleet_once)


def test_scheduled_syncs(worlds: Worlds) -> None:
    hourly = worlds("a", schedule="1h", sync_on_change=False)
    scheduler = FakeScheduler()
    assert add_sync_timers(scheduler, hourly.pipeline) == ["audience-sync:high_value"]
    seconds, fn, once = scheduler.timers["audience-sync:high_value"]
    assert (seconds, once) == (3600, True)
    hourly.identify("u1", email="a@example.com", lifetime_value=900)
    report = asyncio.run(fn())
    assert report.entered == {"high_value": 1}

    nightly = worlds("b", schedule="0 3 * * *", sync_on_change=False)
    clock = [T0]  # 2023-11-14 22:13:20 UTC
    scheduler = FakeScheduler()
    add_sync_timers(scheduler, nightly.pipeline, clock=lambda: clock[0])
    seconds, fn, once = scheduler.timers["audience-sync:high_value"]
    assert (seconds, once) == (60, True)
    nightly.identify("u1", email="a@example.com", lifetime_value=900)
    assert asyncio.run(fn()) is None  # not 03:00 yet
    clock[0] = T0 + 5 * 3600  # past 03:00 the next day
    nightly.now = clock[0]
    assert asyncio.run(fn()).entered == {"high_value": 1}
    assert asyncio.run(fn()) is None  # ran for this 03:00 already


def test_no_scheduled_audience_adds_no_timer(world: World) -> None:
    scheduler = FakeScheduler()
    assert add_sync_timers(scheduler, world.pipeline) == []
