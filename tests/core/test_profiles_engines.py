"""The profile store's key behaviours on both engines: a SQLite file and a PostgreSQL schema
(fresh per test in the `test` database on 127.0.0.1:5432). The same calls, the same answers:
the seed scenario's merges, the logout flow, attribute type rules, sessions on a simulated
clock, consent, dedup across a reopen, deletion.

The PostgreSQL cases skip, with the reason, only when that server cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from collector_helpers import basic, serve_app
from pg_helpers import PG_URL, pg_unreachable
from sqlite_utils import Database

from crossdock.collector import make_app
from crossdock.config import AttributeRulesConfig, LoadedConfig, ProfilesConfig
from crossdock.loader import parse_config
from crossdock.models import EnrichedMessage, parse_message
from crossdock.outbox import Outbox, open_outbox
from crossdock.outbox.migrations import apply_migrations
from crossdock.outbox.pg_schema import PG_MIGRATIONS, pg_009_attribute_definitions, temporary_schema
from crossdock.outbox.pg_schema import apply_migrations as apply_pg_migrations
from crossdock.pipeline import Pipeline, build_pipeline
from crossdock.profiles import ProfileStore, make_profile_hook, sweep_and_route
from crossdock.profiles.migrations import (
    PROFILE_MIGRATIONS,
    profiles_m002_attribute_definitions,
    upgrade_profiles,
)
from crossdock.testing.clock import ManualClock

DAY = 86400.0
START = 1_700_000_000.0


@dataclass
class Engine:
    """One database; `open()` gives a new outbox and profile store on it (new connections),
    as a restarted daemon would get."""

    name: str
    url: str
    clock: ManualClock = field(default_factory=lambda: ManualClock(START))
    opened: list[Outbox] = field(default_factory=list)

    def open(self, config: ProfilesConfig | None = None) -> tuple[Outbox, ProfileStore]:
        outbox = open_outbox(self.url)
        self.opened.append(outbox)
        db = getattr(outbox, "db", None)  # SQLite: the store creates its tables there
        return outbox, ProfileStore(config or ProfilesConfig(), db=db, clock=self.clock)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        found = Engine("sqlite", f"sqlite:///{tmp_path / 'crossdock.db'}")
        yield found
    else:
        reason = pg_unreachable()
        if reason:
            pytest.skip(reason)
        with temporary_schema(PG_URL, "crossdock_profiles") as url:
            found = Engine("postgresql", url)
            try:
                yield found
            finally:
                for outbox in found.opened:
                    outbox.close()
        return
    for outbox in found.opened:
        outbox.close()


@dataclass
class Person:
    """An outbox and its store, with the calls the tests make."""

    outbox: Outbox
    store: ProfileStore

    def send(self, raw: dict[str, Any]) -> list[EnrichedMessage]:
        with self.outbox.transaction() as db:  # type: ignore[attr-defined]
            return self.store.resolve(db, parse_message(raw))

    def show(self, ref: str) -> dict[str, Any]:
        with self.outbox.transaction() as db:  # type: ignore[attr-defined]
            found = self.store.show(db, ref)
        assert found is not None, ref
        return found

    def find(self, ref: str) -> str | None:
        with self.outbox.transaction() as db:  # type: ignore[attr-defined]
            return self.store.find(db, ref)

    def stats(self) -> dict[str, int]:
        with self.outbox.transaction() as db:  # type: ignore[attr-defined]
            return self.store.stats(db)


@pytest.fixture
def p(engine: Engine) -> Person:
    return Person(*engine.open())


def test_seed_scenario_two_anonymous_visits_then_sign_up(p: Person, engine: Engine) -> None:
    clock = engine.clock
    p.send({"type": "page", "anonymousId": "laptop", "sessionId": "s-day1", "name": "Home",
            "context": {"traits": {"referrer": "ad"}}})
    p.send({"type": "track", "anonymousId": "laptop", "sessionId": "s-day1",
            "event": "Product Viewed"})
    clock.advance(2 * DAY)
    p.send({"type": "identify", "anonymousId": "phone", "sessionId": "s-day3",
            "traits": {"email": "Ann@Example.com", "newsletter": True}})
    assert p.find("laptop") != p.find("phone")
    assert p.stats()["profiles_anonymous"] == 2
    clock.advance(4 * DAY)
    out = p.send({"type": "identify", "anonymousId": "laptop", "userId": "u-ann",
                  "sessionId": "s-day7",
                  "traits": {"email": "ann@example.com", "firstName": "Ann", "plan": "pro"}})
    profile = p.show("u-ann")
    assert profile["known"] is True
    assert sorted(profile["identities"]["anonymousId"]) == ["laptop", "phone"]
    assert profile["identities"]["userId"] == ["u-ann"]
    assert profile["identities"]["email"] == ["ann@example.com"]
    assert [s["sessionId"] for s in profile["sessions"]] == ["s-day1", "s-day3", "s-day7"]
    assert profile["messages"] == 4
    assert profile["created_at"] == "2023-11-14T22:13:20Z"  # the laptop's first visit
    custom = {k: v["value"] for k, v in profile["attributes"]["custom"].items()}
    assert custom == {"referrer": "ad", "newsletter": True, "plan": "pro"}
    assert profile["attributes"]["system"]["firstName"]["value"] == "Ann"
    assert len(profile["merges"]) == 1 and "same email" in profile["merges"][0]["reason"]
    assert {p.find(ref) for ref in ("laptop", "phone", "u-ann", "ANN@example.com ")} == {
        profile["id"]}
    stats = p.stats()
    assert (stats["profiles_known"], stats["profiles_anonymous"], stats["merges"]) == (1, 0, 1)
    assert out[-1].profile_id == profile["id"] and out[-1].identified
    assert out[-1].user_attributes["newsletter"] is True


def test_identify_and_alias_merge_anonymous_profiles(p: Person) -> None:
    p.send({"type": "track", "anonymousId": "a1", "event": "Viewed",
            "context": {"traits": {"color": "red"}}})
    p.send({"type": "identify", "userId": "u1", "traits": {"plan": "free"}})
    p.send({"type": "track", "userId": "u1", "anonymousId": "a1", "event": "X"})
    profile = p.show("u1")
    assert set(profile["attributes"]["custom"]) == {"color", "plan"}
    assert profile["merges"][0]["reason"] == "anonymousId a1 identified as userId u1"
    p.send({"type": "page", "anonymousId": "a2"})
    p.send({"type": "alias", "previousId": "a2", "userId": "u1"})
    profile = p.show("u1")
    assert sorted(profile["identities"]["anonymousId"]) == ["a1", "a2"]
    assert len(profile["merges"]) == 2
    assert profile["messages"] == 5


def test_user_id_never_changes_logout_flow(p: Person) -> None:
    p.send({"type": "identify", "anonymousId": "device", "userId": "alice",
            "traits": {"plan": "pro"}})
    out = p.send({"type": "identify", "anonymousId": "device", "userId": "bob",
                  "traits": {"plan": "free"}})
    alice, bob = p.show("alice"), p.show("bob")
    assert alice["id"] != bob["id"]
    assert alice["attributes"]["custom"]["plan"]["value"] == "pro"
    assert bob["attributes"]["custom"]["plan"]["value"] == "free"
    assert out[-1].identities["userId"] == "bob"
    assert bob["merges"] == [] and alice["merges"] == []
    p.send({"type": "track", "anonymousId": "device", "event": "Viewed"})
    assert p.show("bob")["messages"] == 2
    p.send({"type": "alias", "previousId": "alice", "userId": "bob"})
    assert p.show("alice")["userId"] == "alice"
    assert any(r["rule"] == "alias" for r in p.show("bob")["rejections"])
    assert p.stats()["profiles_known"] == 2


def test_attribute_type_fixed_by_first_value_and_counted(p: Person) -> None:
    p.send({"type": "identify", "userId": "u", "traits": {"age": 30, "tags": ["a"]}})
    out = p.send({"type": "identify", "userId": "u",
                  "traits": {"age": "thirty", "team": "Oslo", "tags": ["b", "c"],
                             "bio": "x" * 1500}})
    p.send({"type": "identify", "userId": "u", "traits": {"age": True}})
    custom = p.show("u")["attributes"]["custom"]
    assert custom["age"] == {"type": "number", "value": 30}
    assert custom["team"] == {"type": "string", "value": "Oslo"}
    assert custom["tags"] == {"type": "array", "value": ["b", "c"]}
    assert len(custom["bio"]["value"]) == 1000
    rejections = p.show("u")["rejections"]
    assert sorted(r["rule"] for r in rejections) == ["truncated", "type", "type"]
    assert out[-1].user_attributes["age"] == 30
    stats = p.stats()
    assert (stats["attribute_type"], stats["attribute_truncated"]) == (2, 1)
    # A None value removes the attribute; its type stays fixed for the account.
    p.send({"type": "identify", "userId": "u", "traits": {"age": None}})
    assert "age" not in p.show("u")["attributes"]["custom"]
    p.send({"type": "identify", "userId": "u", "traits": {"age": "thirty"}})
    assert "age" not in p.show("u")["attributes"]["custom"]
    p.send({"type": "identify", "userId": "u", "traits": {"age": 31}})
    assert p.show("u")["attributes"]["custom"]["age"] == {"type": "number", "value": 31}


def test_an_attribute_is_defined_once_for_the_whole_account(engine: Engine) -> None:
    rules = AttributeRulesConfig(max_custom_per_type=2)
    p = Person(*engine.open(ProfilesConfig(attributes=rules)))
    p.send({"type": "identify", "userId": "a", "traits": {"age": 30, "team": "Oslo",
                                                          "firstName": "Ann"}})
    engine.clock.advance(60)
    # Another person: the type age's first datapoint fixed holds for them too (it was
    # per profile: "thirty" became a string attribute of b).
    p.send({"type": "identify", "userId": "b", "traits": {"age": "thirty", "firstName": 7,
                                                          "city": "Bergen"}})
    b = p.show("b")
    assert b["attributes"]["custom"] == {"city": {"type": "string", "value": "Bergen"}}
    assert b["attributes"]["system"] == {}
    assert sorted((r["attribute"], r["rule"]) for r in b["rejections"]) == [
        ("age", "type"), ("firstName", "type")]
    # The cap counts the account's definitions: team and city are its 2 strings, so b's
    # third string name is refused although b holds only one string attribute.
    p.send({"type": "identify", "userId": "b", "traits": {"plan": "pro", "team": "Bergen",
                                                          "score": 1}})
    b = p.show("b")
    assert set(b["attributes"]["custom"]) == {"city", "team", "score"}
    assert ("plan", "type_limit") in {(r["attribute"], r["rule"]) for r in b["rejections"]}
    assert ("at most 2 custom string attributes are defined for the account; attribute "
            "rejected") in {
        r["detail"] for r in b["rejections"]}
    with p.outbox.transaction() as db:  # type: ignore[attr-defined]
        definitions = p.store.definitions(db)
    assert definitions == [
        {"name": "age", "part": "custom", "type": "number",
         "first_seen": "2023-11-14T22:13:20Z", "profiles": 1, "rejected": 1},
        {"name": "city", "part": "custom", "type": "string",
         "first_seen": "2023-11-14T22:14:20Z", "profiles": 1, "rejected": 0},
        {"name": "score", "part": "custom", "type": "number",
         "first_seen": "2023-11-14T22:14:20Z", "profiles": 1, "rejected": 0},
        {"name": "team", "part": "custom", "type": "string",
         "first_seen": "2023-11-14T22:13:20Z", "profiles": 2, "rejected": 0},
        {"name": "firstName", "part": "system", "type": "string",
         "first_seen": "2023-11-14T22:13:20Z", "profiles": 1, "rejected": 1},
    ]


def test_consent_from_opt_ins_and_context_survives_a_merge(p: Person) -> None:
    out = p.send({
        "type": "identify", "anonymousId": "a",
        "traits": {"first_name": "Ann", "emailOptIn": True, "smsOptIn": False, "tier": "gold"},
        "context": {"consent": {"categoryPreferences": {"marketing": True, "ads": False}}},
    })
    assert out[-1].consent == {"email", "marketing"}
    profile = p.show("a")
    assert set(profile["attributes"]["system"]) == {"firstName", "emailOptIn", "smsOptIn"}
    assert set(profile["attributes"]["custom"]) == {"tier"}
    out = p.send({"type": "track", "anonymousId": "a", "event": "E",
                  "context": {"consent": {"marketing": False}}})
    assert out[-1].consent == {"email"}
    out = p.send({"type": "track", "userId": "u", "anonymousId": "a", "event": "E"})
    assert out[-1].consent == {"email"}
    assert p.show("u")["consent"]["marketing"]["granted"] is False


def test_a_purpose_never_mentioned_takes_its_default_and_null_forgets_an_opt_in(
        engine: Engine) -> None:
    p = Person(*engine.open(ProfilesConfig(consent_defaults={"sms": False})))
    out = p.send({"type": "identify", "userId": "u", "traits": {"plan": "pro"}})
    assert out[-1].consent == {"email"}  # email on by default, sms configured off
    shown = p.show("u")["consent"]
    assert shown["email"] == {"granted": True, "updated_at": None, "default": True}
    assert shown["whatsapp"]["granted"] is False
    out = p.send({"type": "identify", "userId": "u",
                  "traits": {"emailOptIn": False, "whatsappOptIn": True}})
    assert out[-1].consent == {"whatsapp"}
    assert p.show("u")["consent"]["email"]["default"] is False
    # null removes the opt-in, so the channel is back to its default.
    out = p.send({"type": "identify", "userId": "u", "traits": {"emailOptIn": None}})
    assert out[-1].consent == {"email", "whatsapp"}
    assert p.show("u")["consent"]["email"]["default"] is True
    assert "emailOptIn" not in p.show("u")["attributes"]["system"]
    with p.outbox.transaction() as db:  # type: ignore[attr-defined]
        assert p.store.consent(db, p.store.find(db, "u") or "") == {"email", "whatsapp"}


def test_sessions_on_a_simulated_clock(p: Person, engine: Engine) -> None:
    clock = engine.clock
    out = p.send({"type": "page", "anonymousId": "a", "sessionId": "s1"})
    assert [(e.message.get("event"), e.system) for e in out] == [
        ("session_start", True), (None, False)]
    clock.advance(44 * 60)
    assert len(p.send({"type": "page", "anonymousId": "a", "sessionId": "s1"})) == 1
    clock.advance(44 * 60)
    with p.outbox.transaction() as db:  # type: ignore[attr-defined]
        assert p.store.sweep_sessions(db) == []
    assert p.stats()["sessions_open"] == 1
    clock.advance(60)
    with p.outbox.transaction() as db:  # type: ignore[attr-defined]
        ended = p.store.sweep_sessions(db)
        assert p.store.sweep_sessions(db) == []
    assert len(ended) == 1 and ended[0].message["event"] == "session_end"
    assert ended[0].message["anonymousId"] == "a"
    assert ended[0].message["properties"]["messageCount"] == 2
    assert ended[0].message["properties"]["durationSeconds"] == 44 * 60 + 45 * 60
    assert ended[0].message["messageId"].startswith("session_end-")
    # The same id back after the timeout: the old session is over, a new one starts.
    clock.advance(3600)
    out = p.send({"type": "page", "anonymousId": "a", "sessionId": "s2"})
    clock.advance(2 * 3600)
    out = p.send({"type": "page", "anonymousId": "a", "sessionId": "s2"})
    assert [e.message.get("event") for e in out] == ["session_end", "session_start", None]
    assert [s["sessionId"] for s in p.show("a")["sessions"]] == ["s1", "s2", "s2"]
    assert p.stats()["sessions_open"] == 1


def test_dedup_window_survives_reopening(engine: Engine) -> None:
    first = Person(*engine.open())
    first.send({"type": "track", "anonymousId": "a", "event": "E", "messageId": "m1"})
    first.outbox.close()
    again = Person(*engine.open())
    with again.outbox.transaction() as db:  # type: ignore[attr-defined]
        assert again.store.seen(db, "m1") and not again.store.seen(db, "m2")
    engine.clock.advance(4 * 3600)
    with again.outbox.transaction() as db:  # type: ignore[attr-defined]
        assert not again.store.seen(db, "m1")  # outside the 4 hour window
        assert again.store.purge(db) == 1
        assert again.store.purge(db) == 0


def test_a_rejected_message_leaves_no_trace(p: Person) -> None:
    with p.outbox.transaction() as db:  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="userId: is required for alias"):
            p.store.resolve(db, parse_message({"type": "alias", "anonymousId": "x",
                                               "previousId": "y"}))
        # The transaction goes on (the savepoint undid the half-resolved message).
        p.store.resolve(db, parse_message({"type": "page", "anonymousId": "z"}))
    assert p.find("x") is None and p.find("z") is not None


def test_delete_erases_the_person_and_the_profiles_merged_into_it(p: Person) -> None:
    p.send({"type": "page", "anonymousId": "a", "sessionId": "s"})
    p.send({"type": "identify", "anonymousId": "b", "userId": "u",
            "traits": {"email": "u@example.com", "plan": "pro"},
            "context": {"consent": ["ads"]}})
    p.send({"type": "alias", "previousId": "a", "userId": "u"})
    p.send({"type": "identify", "userId": "other", "traits": {"plan": "free"}})
    with p.outbox.transaction() as db:  # type: ignore[attr-defined]
        deleted = p.store.delete(db, "u@example.com")
        assert deleted is not None and len(deleted.merged) == 1
        assert deleted.event is not None
        assert deleted.event.message["event"] == "profile_deleted"
        assert deleted.event.message["userId"] == "u"
        for ref in ("a", "b", "u", "u@example.com", deleted.profile_id, deleted.merged[0]):
            assert p.store.find(db, ref) is None
        assert p.store.delete(db, "u") is None
        left = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in (
            "profiles", "profile_identities", "profile_sessions", "profile_merges",
            "profile_custom_attributes", "profile_system_attributes", "profile_consent")}
    assert left == {"profiles": 1, "profile_identities": 1, "profile_sessions": 0,
                    "profile_merges": 0, "profile_custom_attributes": 1,
                    "profile_system_attributes": 0, "profile_consent": 0}
    assert p.stats()["profiles_deleted"] == 1
    assert p.show("other")["attributes"]["custom"]["plan"]["value"] == "free"


def loaded_for(engine: Engine, tmp_path: Path) -> LoadedConfig:
    hook = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
            "delivery": {"allow_private_network": True}}
    return parse_config({
        "outbox": {"url": engine.url},
        "collector": {"write_keys": ["wk"]},
        "destinations": {
            "sessions": {**hook, "filter": {"events": {"allow": ["session_end"]}}},
            "all": hook,
        },
    }, base_dir=tmp_path, env={})


def test_build_pipeline_attaches_the_store_on_either_engine(engine: Engine,
                                                            tmp_path: Path) -> None:
    loaded = loaded_for(engine, tmp_path)
    pipeline = build_pipeline(loaded)
    try:
        assert isinstance(pipeline.profiles, ProfileStore)
        assert isinstance(make_profile_hook(loaded, pipeline.outbox), ProfileStore)
        result = pipeline.accept([
            {"type": "track", "anonymousId": "a", "event": "E", "messageId": "m1"},
            {"type": "identify", "anonymousId": "a", "userId": "u", "messageId": "m2"},
        ])
        assert result.accepted == ["m1", "m2"]
        again = pipeline.accept([{"type": "track", "userId": "u", "event": "E",
                                  "messageId": "m1"}])
        assert again.duplicates == ["m1"] and again.rows == 0
        with pipeline.outbox.transaction() as db:  # type: ignore[attr-defined]
            profile = pipeline.profiles.show(db, "u")
        assert profile is not None and profile["messages"] == 2
        assert profile["identities"]["anonymousId"] == ["a"]
    finally:
        pipeline.close()


def test_the_session_sweep_routes_session_end_once(engine: Engine, tmp_path: Path) -> None:
    loaded = loaded_for(engine, tmp_path)
    outbox, store = engine.open(loaded.config.profiles)
    pipeline = Pipeline(loaded, outbox, store)
    pipeline.accept([{"type": "track", "userId": "u", "sessionId": "s1", "event": "A"}])
    engine.clock.advance(45 * 60 - 1)
    assert sweep_and_route(pipeline, store) == 0
    engine.clock.advance(1)
    # A second sweeper (another daemon's timer firing late) finds nothing left to end.
    other_outbox, other_store = engine.open(loaded.config.profiles)
    other = Pipeline(loaded, other_outbox, other_store)
    assert sweep_and_route(pipeline, store) == 1
    assert sweep_and_route(other, other_store) == 0
    counts = outbox.counts()
    assert counts["sessions"].queued == 1  # session_end only
    assert counts["all"].queued == 1  # A: system events go only where named
    with outbox.transaction() as db:  # type: ignore[attr-defined]
        ended = db.execute("SELECT message_id FROM outbox WHERE destination = 'sessions'"
                           ).fetchone()[0]
    assert ended.startswith("session_end-")


def test_the_collector_request_id_window(engine: Engine, tmp_path: Path) -> None:
    loaded = loaded_for(engine, tmp_path)
    outbox, store = engine.open(loaded.config.profiles)
    app = make_app(loaded, Pipeline(loaded, outbox, store), clock=engine.clock)
    auth = basic("wk")
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        answers = [
            client.post("/v1/track", headers={**auth, "x-request-id": "req-1"},
                        json={"userId": "u", "event": "E", "messageId": mid}).json()
            for mid in ("m1", "m2")
        ]
        other = client.post("/v1/track", headers={**auth, "x-request-id": "req-2"},
                            json={"userId": "u", "event": "E", "messageId": "m3"}).json()
        metrics = client.get("/metrics").text
    assert [a["response"]["accepted"] for a in answers] == [1, 0]
    assert answers[1]["response"]["duplicates"] == 1
    assert other["response"]["accepted"] == 1
    assert 'crossdock_profiles{kind="known"} 1' in metrics
    with outbox.transaction() as db:  # type: ignore[attr-defined]
        assert store.show(db, "u")["messages"] == 2  # type: ignore[index]


def test_an_upgrade_defines_the_attributes_already_stored(engine: Engine) -> None:
    """Profiles stored before attribute definitions existed: each name is defined with the
    type of its earliest-written value, so the account's first datapoint still decides."""
    rows = [("p1", "age", "number", "30", START + 5), ("p2", "age", "string", '"x"', START),
            ("p1", "plan", "string", '"pro"', START + 9)]
    insert = ("INSERT INTO profile_custom_attributes (profile_id, name, type, value, "
              "updated_at) VALUES ({0}, {0}, {0}, {0}, {0})")
    if engine.name == "sqlite":
        db = Database(engine.url.removeprefix("sqlite:///"))
        before = PROFILE_MIGRATIONS[:PROFILE_MIGRATIONS.index(
            profiles_m002_attribute_definitions)]
        apply_migrations(db, before)
        db.conn.executemany(insert.format("?"), rows)
        db.conn.commit()
        assert upgrade_profiles(db)[0] == "profiles_m002_attribute_definitions"
        found = db.execute("SELECT name, type, first_seen FROM profile_attribute_definitions "
                           "ORDER BY name").fetchall()
        db.close()
    else:
        with psycopg.connect(engine.url, autocommit=True) as conn:
            before = PG_MIGRATIONS[:PG_MIGRATIONS.index(pg_009_attribute_definitions)]
            apply_pg_migrations(conn, before)
            with conn.cursor() as cur:
                cur.executemany(insert.format("%s"), rows)
            assert apply_pg_migrations(conn, PG_MIGRATIONS)[0] == "pg_009_attribute_definitions"
            found = conn.execute("SELECT name, type, first_seen FROM "
                                 "profile_attribute_definitions ORDER BY name").fetchall()
    assert [tuple(r) for r in found] == [("age", "string", START), ("plan", "string",
                                                                     START + 9)]
