"""The profile store on a real SQLite file: identity merges, the logout flow, sessions,
attribute rules, consent, deletion. Time comes from a simulated clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crossdock.config import AttributeRulesConfig, ProfilesConfig
from crossdock.errors import ConfigError, MessageError
from crossdock.loader import parse_config
from crossdock.models import EnrichedMessage, parse_message
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.profiles import ProfileStore
from crossdock.testing.clock import ManualClock

DAY = 86400.0


@pytest.fixture
def outbox(tmp_path: Path) -> Any:
    box = SQLiteOutbox(tmp_path / "crossdock.db")
    yield box
    box.close()


@pytest.fixture
def store(outbox: SQLiteOutbox, clock: ManualClock) -> ProfileStore:
    return ProfileStore(ProfilesConfig(), db=outbox.db, clock=clock)


def send(outbox: SQLiteOutbox, store: ProfileStore, raw: dict[str, Any]) -> list[EnrichedMessage]:
    with outbox.transaction() as db:
        return store.resolve(db, parse_message(raw))


def show(outbox: SQLiteOutbox, store: ProfileStore, ref: str) -> dict[str, Any]:
    with outbox.transaction() as db:
        found = store.show(db, ref)
    assert found is not None, ref
    return found


def test_seed_scenario_two_anonymous_visits_then_sign_up(
    outbox: SQLiteOutbox, store: ProfileStore, clock: ManualClock
) -> None:
    # Day 1, laptop: browses anonymously.
    send(outbox, store, {"type": "page", "anonymousId": "laptop", "sessionId": "s-day1",
                         "name": "Home", "context": {"traits": {"referrer": "ad"}}})
    send(outbox, store, {"type": "track", "anonymousId": "laptop", "sessionId": "s-day1",
                         "event": "Product Viewed"})
    # Day 3, phone: another anonymous visit, leaves an email for the newsletter.
    clock.advance(2 * DAY)
    send(outbox, store, {"type": "identify", "anonymousId": "phone", "sessionId": "s-day3",
                         "traits": {"email": "Ann@Example.com", "newsletter": True}})
    with outbox.transaction() as db:
        assert store.find(db, "laptop") != store.find(db, "phone")
        assert store.stats(db)["profiles_anonymous"] == 2
    # Day 7, laptop: signs up with a user id and the same email.
    clock.advance(4 * DAY)
    out = send(outbox, store, {
        "type": "identify", "anonymousId": "laptop", "userId": "u-ann", "sessionId": "s-day7",
        "traits": {"email": "ann@example.com", "firstName": "Ann", "plan": "pro"},
    })
    profile = show(outbox, store, "u-ann")
    assert profile["known"] is True
    assert sorted(profile["identities"]["anonymousId"]) == ["laptop", "phone"]
    assert profile["identities"]["userId"] == ["u-ann"]
    assert [s["sessionId"] for s in profile["sessions"]] == ["s-day1", "s-day3", "s-day7"]
    assert profile["messages"] == 4
    custom = {k: v["value"] for k, v in profile["attributes"]["custom"].items()}
    assert custom == {"referrer": "ad", "newsletter": True, "plan": "pro"}
    assert profile["attributes"]["system"]["firstName"]["value"] == "Ann"
    assert len(profile["merges"]) == 1 and "same email" in profile["merges"][0]["reason"]
    with outbox.transaction() as db:
        stats = store.stats(db)
        # Every old id now leads to the one known profile.
        assert {store.find(db, ref) for ref in ("laptop", "phone", "u-ann")} == {profile["id"]}
    assert stats["profiles_known"] == 1 and stats["profiles_anonymous"] == 0
    enriched = out[-1]
    assert enriched.profile_id == profile["id"] and enriched.identified
    assert enriched.user_attributes["newsletter"] is True


def test_identify_merges_the_device_profile_and_alias_merges_previous_id(
    outbox: SQLiteOutbox, store: ProfileStore
) -> None:
    send(outbox, store, {"type": "track", "anonymousId": "a1", "event": "Viewed",
                         "context": {"traits": {"color": "red"}}})
    send(outbox, store, {"type": "identify", "userId": "u1", "traits": {"plan": "free"}})
    # u1 already has a profile: a1's anonymous profile is merged into it.
    send(outbox, store, {"type": "track", "userId": "u1", "anonymousId": "a1", "event": "X"})
    profile = show(outbox, store, "u1")
    assert {k for k in profile["attributes"]["custom"]} == {"color", "plan"}
    assert profile["merges"][0]["reason"] == "anonymousId a1 identified as userId u1"
    send(outbox, store, {"type": "page", "anonymousId": "a2"})
    send(outbox, store, {"type": "alias", "previousId": "a2", "userId": "u1"})
    profile = show(outbox, store, "u1")
    assert sorted(profile["identities"]["anonymousId"]) == ["a1", "a2"]
    assert len(profile["merges"]) == 2


def test_user_id_never_changes_logout_flow(outbox: SQLiteOutbox, store: ProfileStore) -> None:
    send(outbox, store, {"type": "identify", "anonymousId": "device", "userId": "alice",
                         "traits": {"plan": "pro"}})
    # Bob logs in on the same device: a new known profile, alice's is untouched.
    out = send(outbox, store, {"type": "identify", "anonymousId": "device", "userId": "bob",
                               "traits": {"plan": "free"}})
    alice, bob = show(outbox, store, "alice"), show(outbox, store, "bob")
    assert alice["id"] != bob["id"]
    assert alice["userId"] == "alice" and bob["userId"] == "bob"
    assert alice["attributes"]["custom"]["plan"]["value"] == "pro"
    assert out[-1].identities["userId"] == "bob"
    assert bob["merges"] == [] and alice["merges"] == []
    # The device now belongs to bob: anonymous messages from it join bob's profile.
    send(outbox, store, {"type": "track", "anonymousId": "device", "event": "Viewed"})
    assert show(outbox, store, "bob")["messages"] == 2
    # An alias cannot move alice's identity to bob: a user id never changes.
    send(outbox, store, {"type": "alias", "previousId": "alice", "userId": "bob"})
    assert show(outbox, store, "alice")["userId"] == "alice"
    assert any(r["rule"] == "alias" for r in show(outbox, store, "bob")["rejections"])


def test_attribute_type_fixed_by_first_value_rest_of_message_kept(
    outbox: SQLiteOutbox, store: ProfileStore
) -> None:
    send(outbox, store, {"type": "identify", "userId": "u", "traits": {"age": 30}})
    out = send(outbox, store, {"type": "identify", "userId": "u",
                               "traits": {"age": "thirty", "team": "Oslo"}})
    profile = show(outbox, store, "u")
    custom = profile["attributes"]["custom"]
    assert custom["age"] == {"type": "number", "value": 30}
    assert custom["team"] == {"type": "string", "value": "Oslo"}
    assert [r["rule"] for r in profile["rejections"]] == ["type"]
    assert "fixed as number" in profile["rejections"][0]["detail"]
    assert out[-1].user_attributes["age"] == 30
    with outbox.transaction() as db:
        assert store.stats(db)["attribute_type"] == 1


def test_attribute_name_length_truncation_reserved_prefix_and_type_limit(
    outbox: SQLiteOutbox, clock: ManualClock
) -> None:
    rules = AttributeRulesConfig(max_custom_per_type=3)
    store = ProfileStore(ProfilesConfig(attributes=rules), db=outbox.db, clock=clock)
    traits: dict[str, Any] = {
        "n" * 49: "ok", "n" * 50: "too long", "we_secret": 1, "bio": "x" * 1500,
        "Bio": "case sensitive", "tag": "fourth string", "a": 1, "b": 2, "c": 3, "d": 4,
    }
    send(outbox, store, {"type": "identify", "userId": "u", "traits": traits})
    profile = show(outbox, store, "u")
    custom = profile["attributes"]["custom"]
    # "tag" is the 4th string and "d" the 4th number: over the per-type limit of 3.
    assert set(custom) == {"n" * 49, "bio", "Bio", "a", "b", "c"}
    assert len(custom["bio"]["value"]) == 1000
    rules_hit = sorted(r["rule"] for r in profile["rejections"])
    assert rules_hit == ["name_length", "reserved_prefix", "truncated", "type_limit",
                         "type_limit"]


def test_system_and_custom_attributes_stored_apart_consent_from_opt_ins_and_context(
    outbox: SQLiteOutbox, store: ProfileStore
) -> None:
    out = send(outbox, store, {
        "type": "identify", "userId": "u",
        "traits": {"first_name": "Ann", "emailOptIn": True, "smsOptIn": False, "tier": "gold"},
        "context": {"consent": {"categoryPreferences": {"marketing": True, "ads": False}}},
    })
    profile = show(outbox, store, "u")
    assert set(profile["attributes"]["system"]) == {"firstName", "emailOptIn", "smsOptIn"}
    assert set(profile["attributes"]["custom"]) == {"tier"}
    assert out[-1].consent == {"email", "marketing"}
    # Revoking through context.consent sticks; a message saying nothing changes nothing.
    out = send(outbox, store, {"type": "track", "userId": "u", "event": "E",
                               "context": {"consent": {"marketing": False}}})
    assert out[-1].consent == {"email"}
    out = send(outbox, store, {"type": "track", "userId": "u", "event": "E"})
    assert out[-1].consent == {"email"}


def test_sessions_start_and_end_after_the_timeout(
    outbox: SQLiteOutbox, store: ProfileStore, clock: ManualClock
) -> None:
    out = send(outbox, store, {"type": "page", "anonymousId": "a", "sessionId": "s1"})
    assert [(e.message.get("event"), e.system) for e in out] == [
        ("session_start", True), (None, False)]
    clock.advance(44 * 60)
    out = send(outbox, store, {"type": "page", "anonymousId": "a", "sessionId": "s1"})
    assert len(out) == 1  # continues the session
    clock.advance(44 * 60)
    with outbox.transaction() as db:
        assert store.sweep_sessions(db) == []
    clock.advance(60)
    with outbox.transaction() as db:
        ended = store.sweep_sessions(db)
        assert store.sweep_sessions(db) == []  # ended once
    assert len(ended) == 1
    end = ended[0]
    assert end.system and end.message["event"] == "session_end"
    assert end.message["anonymousId"] == "a"
    assert end.message["properties"]["messageCount"] == 2
    # It ended 45 minutes after the last message, not when the sweep ran.
    assert end.message["properties"]["durationSeconds"] == 44 * 60 + 45 * 60


def test_a_session_id_back_after_the_timeout_ends_and_reopens(
    outbox: SQLiteOutbox, store: ProfileStore, clock: ManualClock
) -> None:
    send(outbox, store, {"type": "page", "anonymousId": "a", "sessionId": "s1"})
    clock.advance(2 * 3600)
    out = send(outbox, store, {"type": "page", "anonymousId": "a", "sessionId": "s1"})
    assert [e.message.get("event") for e in out] == ["session_end", "session_start", None]
    assert len(show(outbox, store, "a")["sessions"]) == 2


def test_rejected_message_leaves_no_trace(outbox: SQLiteOutbox, store: ProfileStore) -> None:
    with pytest.raises(MessageError, match="userId: is required for alias"), \
            outbox.transaction() as db:
        store.resolve(db, parse_message({"type": "alias", "anonymousId": "x",
                                         "previousId": "y"}))
    with outbox.transaction() as db:
        assert store.find(db, "x") is None


def test_dedup_survives_reopening_the_file(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "d.db"
    box = SQLiteOutbox(path)
    store = ProfileStore(db=box.db, clock=clock)
    send(box, store, {"type": "track", "anonymousId": "a", "event": "E", "messageId": "m1"})
    box.close()
    box = SQLiteOutbox(path)
    store = ProfileStore(db=box.db, clock=clock)
    with box.transaction() as db:
        assert store.seen(db, "m1") and not store.seen(db, "m2")
    clock.advance(4 * 3600)
    with box.transaction() as db:
        assert not store.seen(db, "m1")  # outside the 4 hour window
        assert store.purge(db) == 1
    box.close()


def test_delete_erases_the_person_and_the_profiles_merged_into_it(
    outbox: SQLiteOutbox, store: ProfileStore
) -> None:
    send(outbox, store, {"type": "page", "anonymousId": "a", "sessionId": "s"})
    send(outbox, store, {"type": "identify", "anonymousId": "b", "userId": "u",
                         "traits": {"email": "u@example.com"}})
    send(outbox, store, {"type": "alias", "previousId": "a", "userId": "u"})
    send(outbox, store, {"type": "identify", "userId": "other"})
    with outbox.transaction() as db:
        deleted = store.delete(db, "u@example.com")
        assert deleted is not None and len(deleted.merged) == 1
        assert deleted.event is not None and deleted.event.message["event"] == "profile_deleted"
        for ref in ("a", "b", "u", "u@example.com", deleted.profile_id, deleted.merged[0]):
            assert store.find(db, ref) is None
        left = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in (
            "profiles", "profile_identities", "profile_sessions", "profile_merges",
            "profile_custom_attributes", "profile_system_attributes")}
        assert store.find(db, "other") is not None
    assert left == {"profiles": 1, "profile_identities": 1, "profile_sessions": 0,
                    "profile_merges": 0, "profile_custom_attributes": 0,
                    "profile_system_attributes": 0}


def test_reserved_prefixes_are_a_config_list_ignored_counted_and_reported(
    outbox: SQLiteOutbox, clock: ManualClock
) -> None:
    assert AttributeRulesConfig().reserved_prefixes == ["we_"]
    rules = AttributeRulesConfig(reserved_prefixes=["we_", "internal_"])
    store = ProfileStore(ProfilesConfig(attributes=rules), db=outbox.db, clock=clock)
    out = send(outbox, store, {"type": "identify", "userId": "u", "traits": {
        "we_score": 3, "internal_id": "x", "$Custom": "kept", "plan": "pro",
        "firstName": "Ann"}})
    profile = show(outbox, store, "u")
    # The rest of the message is kept; `$` is no longer reserved (mParticle's names).
    assert set(profile["attributes"]["custom"]) == {"$Custom", "plan"}
    assert set(profile["attributes"]["system"]) == {"firstName"}
    assert sorted((r["attribute"], r["rule"]) for r in profile["rejections"]) == [
        ("internal_id", "reserved_prefix"), ("we_score", "reserved_prefix")]
    assert "names starting with 'we_' are reserved; attribute ignored" in {
        r["detail"] for r in profile["rejections"]}
    assert "we_score" not in out[-1].user_attributes
    with outbox.transaction() as db:
        assert store.stats(db)["attribute_reserved_prefix"] == 2


def test_the_old_single_reserved_prefix_key_says_what_it_became() -> None:
    with pytest.raises(ConfigError, match="renamed reserved_prefixes, a list"):
        parse_config({"profiles": {"attributes": {"reserved_prefix": "$"}}},
                     base_dir=Path("."), env={})
