"""The data dictionary (crossdock.profiles.dictionary) on both engines, through the real
pipeline: what it records per call, per day and per rule, that it commits with the call (and
not without it), that it writes one statement per table per call whatever the messages, and
that two daemons accepting at once on one PostgreSQL database count every datapoint once."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audience_helpers import ENGINES, engine_url

from crossdock.config import LoadedConfig
from crossdock.loader import parse_config
from crossdock.models import EnrichedMessage
from crossdock.outbox import open_outbox
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline, build_pipeline
from crossdock.profiles import make_profile_hook
from crossdock.profiles.dictionary import (
    OTHER_NAMES,
    Dictionary,
    DictionaryWatch,
    datapoints,
    day_of,
    read_dictionary,
)
from crossdock.testing.clock import ManualClock

DAY = 86_400.0
START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}


def config(url: str, **profiles: Any) -> LoadedConfig:
    raw: dict[str, Any] = {"outbox": {"url": url}, "destinations": {"hook": HOOK}}
    if profiles:
        raw["profiles"] = profiles
    return parse_config(raw, base_dir=Path("."), env={})


class World:
    """A pipeline on one engine whose store and dictionary run on a manual clock."""

    def __init__(self, url: str, **profiles: Any) -> None:
        self.loaded = config(url, **profiles)
        self.clock = ManualClock(START)
        self.outbox = open_outbox(url)
        store = make_profile_hook(self.loaded, self.outbox)
        store.clock = self.clock
        self.pipeline = build_pipeline(self.loaded, self.outbox, profiles=store)

    def accept(self, raws: list[dict[str, Any]]) -> None:
        result = self.pipeline.accept(raws)
        assert not result.errors, result.errors

    def read(self, days: int = 3, **kw: Any) -> Dictionary:
        with self.outbox.transaction() as db:
            return read_dictionary(db, days=days, now=self.clock(), **kw)

    def close(self) -> None:
        self.outbox.close()


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with engine_url(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def world(url: str) -> Iterator[World]:
    found = World(url, attributes={"max_custom_per_type": 2})
    yield found
    found.close()


def track(i: int, event: str = "Order Completed", **traits: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": f"m{i}", "userId": f"u{i % 3}", "event": event,
            "properties": {"total": 10.5 + i, "currency": "EUR", "coupon": None},
            "context": {"traits": traits}}


def entry(found: Dictionary, kind: str, name: str) -> Any:
    matches = [e for e in found.entries if (e.kind, e.name) == (kind, name)]
    assert len(matches) == 1, (kind, name, [(e.kind, e.name) for e in found.entries])
    return matches[0]


def test_events_properties_and_traits_with_types_days_and_rejections(world: World) -> None:
    world.accept([track(i, plan="pro") for i in range(5)]
                 + [{"type": "page", "messageId": "p1", "anonymousId": "a1", "name": "Home"},
                    {"type": "screen", "messageId": "s1", "anonymousId": "a1"}])
    world.clock.advance(DAY)
    world.accept([
        track(10, plan=3),                           # wrong type: plan is a string
        track(11, we_segment="vip"),                 # reserved name
        track(12, **{"x" * 60: 1}),                  # name too long
        track(13, color="red", size="L"),            # size: over the cap of 2 strings
        {"type": "identify", "messageId": "i1", "userId": "u1",
         "traits": {"first_name": "Ann", "total": 1, "plan": None}},
        {"type": "track", "messageId": "t2", "userId": "u1", "event": "Order Completed",
         "properties": {"total": "12"}},
    ])
    found = world.read()
    assert found.days == [day_of(START - DAY), day_of(START), day_of(START + DAY)]

    order = entry(found, "event", "Order Completed")
    assert order.types == {"track": 10} and order.total == 10
    assert order.per_day == [0, 5, 5]
    assert order.first_seen == START and order.last_seen == START + DAY
    # One day shown: totals and first seen still count every day recorded.
    today = entry(world.read(days=1), "event", "Order Completed")
    assert today.per_day == [5] and today.total == 10 and today.first_seen == START
    assert entry(found, "event", "Home").types == {"page": 1}
    assert entry(found, "event", "(unnamed)").types == {"screen": 1}

    total = entry(found, "property", "total")
    # Sent as a number nine times and once as a string: both shown, most first.
    assert total.types == {"number": 9, "string": 1}
    assert list(total.types) == ["number", "string"]
    assert entry(found, "property", "coupon").types == {"null": 9}

    plan = entry(found, "trait", "plan")
    assert plan.defined_type == "string"
    assert plan.types == {"string": 5, "number": 1}   # the null of i1 removes: no datapoint
    assert plan.per_day == [0, 5, 1]
    assert plan.rejected == {"type": 1}
    # A system alias is recorded under its canonical name.
    assert entry(found, "trait", "firstName").defined_type == "string"
    assert entry(found, "trait", "we_segment").rejected == {"reserved_prefix": 1}
    assert entry(found, "trait", "size").rejected == {"type_limit": 1}
    assert entry(found, "trait", "size").defined_type is None

    rules = {(r.name, r.rule): r for r in found.rejections}
    assert set(rules) == {("plan", "type"), ("we_segment", "reserved_prefix"),
                          ("x" * 60, "name_length"), ("size", "type_limit")}
    assert rules[("plan", "type")].label == "wrong type"
    assert rules[("plan", "type")].per_day == [0, 0, 1]
    assert found.by_rule() == {"name_length": 1, "reserved_prefix": 1, "type": 1,
                               "type_limit": 1}
    assert [e.name for e in world.read(kind="event").entries] == [
        "(unnamed)", "Home", "Order Completed"]
    as_json = found.to_json()
    assert as_json["rejected_by_rule"]["type"] == 1
    assert {e["name"] for e in as_json["entries"] if e["kind"] == "trait"} >= {"plan", "size"}


def test_duplicates_and_rejected_messages_are_not_counted(world: World) -> None:
    world.accept([track(1, plan="pro")])
    result = world.pipeline.accept([track(1, plan="pro"), {"type": "track", "userId": "u1"}])
    assert result.duplicates == ["m1"] and len(result.errors) == 1
    assert entry(world.read(), "event", "Order Completed").total == 1
    assert entry(world.read(), "trait", "plan").total == 1


def test_a_failed_call_counts_nothing(url: str) -> None:
    # The dictionary commits with the call: a call rolled back (here a route step that
    # raises, as a broken template would) leaves it as it was.
    loaded = config(url)
    outbox = open_outbox(url)
    try:
        store = make_profile_hook(loaded, outbox)

        def broken(enriched: EnrichedMessage, destination: Any) -> Any:
            raise RuntimeError("broken template")

        failing = Pipeline(loaded, outbox, store, router=broken)
        failing.watch(DictionaryWatch(store.clock))
        with pytest.raises(RuntimeError, match="broken template"):
            failing.accept([track(1, we_x=1)])
        build_pipeline(loaded, outbox, profiles=store).accept([track(2)])
        with outbox.transaction() as db:
            found = read_dictionary(db, days=1)
        assert entry(found, "event", "Order Completed").total == 1
        assert found.rejections == []
        assert not any(e.kind == "trait" for e in found.entries)
    finally:
        outbox.close()


def test_one_statement_per_table_per_call_whatever_the_messages(tmp_path: Path) -> None:
    # Aggregated per call: 200 messages of 4 events and 3 properties, some rejected, write
    # the dictionary in one INSERT and its rejections in one, not a statement per message.
    url = f"sqlite:///{tmp_path / 'c.db'}"
    loaded = config(url)
    outbox = open_outbox(url)
    assert isinstance(outbox, SQLiteOutbox)
    try:
        pipeline = build_pipeline(loaded, outbox)
        statements: list[str] = []
        conn: sqlite3.Connection = outbox.db.conn
        conn.set_trace_callback(statements.append)
        result = pipeline.accept(
            [track(i, event=f"E{i % 4}", we_seg="x") for i in range(200)])
        conn.set_trace_callback(None)
        assert len(result.accepted) == 200
        writes = [s for s in statements if "INTO profile_dictionary" in s]
        assert len(writes) == 2, writes
        assert sum("INTO profile_dictionary_rejections" in s for s in writes) == 1
        with outbox.transaction() as db:
            found = read_dictionary(db, days=1)
        assert sorted(e.name for e in found.entries if e.kind == "event") == [
            "E0", "E1", "E2", "E3"]
        assert found.by_rule() == {"reserved_prefix": 200}
    finally:
        outbox.close()


def test_a_read_of_no_days_is_refused_and_a_new_database_reads_empty(url: str) -> None:
    world = World(url)
    try:
        with pytest.raises(ValueError, match="days: at least 1"):
            world.read(days=0)
        with pytest.raises(ValueError, match="kind: one of event, property, trait"):
            world.read(kind="events")
        found = world.read(days=7)
        assert found.entries == [] and found.rejections == [] and len(found.days) == 7
    finally:
        world.close()


def test_datapoints_of_one_message() -> None:
    from crossdock.models import parse_message

    message = parse_message({
        "type": "track", "userId": "u", "event": "Signed Up",
        "properties": {"a\x00b": 1, "": 2, "list": [1]},
        "context": {"traits": {"email": "a@b.c", "gone": None, "$City": "Oslo"}}})
    assert sorted(datapoints(message)) == [
        ("event", "Signed Up", "track"), ("property", "a\\x00b", "number"),
        ("property", "list", "array"), ("trait", "city", "string"),
        ("trait", "email", "string")]


@pytest.mark.postgres
def test_two_daemons_at_once_count_every_datapoint_once(tmp_path: Path) -> None:
    # Two pipelines (two daemons' worth of connections) on one PostgreSQL schema, accepting
    # batches of different people but the same events at the same time: the other's
    # rejections commit while a call runs, and each finish counts its own messages' only;
    # the day rows take both sums.
    with engine_url("postgresql", tmp_path) as url:
        worlds = [World(url), World(url)]
        try:
            errors: list[BaseException] = []

            def send(world: World, offset: int) -> None:
                try:
                    for batch in range(10):
                        raws = [track(offset + batch * 20 + i, we_seg="x", event=f"E{i % 3}")
                                for i in range(20)]
                        for raw in raws:  # people of their own: nothing serialises them
                            raw["userId"] = f"{raw['userId']}-{offset}"
                        world.accept(raws)
                except BaseException as exc:  # reported below, not lost in the thread
                    errors.append(exc)

            threads = [threading.Thread(target=send, args=(w, n * 1000))
                       for n, w in enumerate(worlds)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            found = worlds[0].read()
            assert sum(e.total for e in found.entries if e.kind == "event") == 400
            assert found.by_rule() == {"reserved_prefix": 400}
            assert entry(found, "property", "total").total == 400
        finally:
            for w in worlds:
                w.close()


def test_past_max_names_new_names_are_counted_as_other_names(url: str) -> None:
    # A source that puts ids in property keys would add a row per id per day for ever.
    world = World(url, dictionary={"max_names": 3})
    try:
        world.accept([{"type": "track", "userId": "u1", "event": "Viewed",
                       "properties": {"a": 1, "b": 2}}])
        world.accept([{"type": "track", "userId": "u1", "event": "Viewed",
                       "properties": {f"id_{i}": i for i in range(50)} | {"a": 3}}])
        # A new watcher (a restart) reads what the dictionary holds: still capped.
        world.pipeline = build_pipeline(world.loaded, world.outbox,
                                        profiles=world.pipeline.profiles)
        world.accept([{"type": "track", "userId": "u1", "event": "Viewed",
                       "properties": {"id_99": 1, "b": 4}}])
        found = world.read()
        properties = {e.name: e.total for e in found.entries if e.kind == "property"}
        assert properties == {"a": 2, "b": 2, "id_0": 1, OTHER_NAMES: 50}
        assert [e.name for e in found.entries if e.kind == "event"] == ["Viewed"]
    finally:
        world.close()


def test_days_older_than_keep_days_are_forgotten(url: str) -> None:
    world = World(url, dictionary={"keep_days": 2})
    try:
        world.accept([{"type": "track", "userId": "u1", "event": "Old",
                       "properties": {"p": 1}}])
        world.clock.advance(DAY)
        world.accept([{"type": "track", "userId": "u1", "event": "Kept"}])
        assert {e.name for e in world.read().entries} == {"Old", "Kept", "p"}
        world.clock.advance(DAY)  # the first day is now three days back: forgotten
        world.accept([{"type": "track", "userId": "u1", "event": "New"}])
        found = world.read(days=5)
        assert {e.name: e.per_day for e in found.entries} == {
            "Kept": [0, 0, 0, 1, 0], "New": [0, 0, 0, 0, 1]}
    finally:
        world.close()
