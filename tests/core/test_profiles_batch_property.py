"""Resolving a batch set-wise (crossdock.profiles.batch) gives exactly what resolving its
messages one by one gave (the per-message path at main, tests/core/profile_oracle.py).

Hypothesis draws batches of messages from a few users, devices, emails and sessions, so that
users repeat, anonymous profiles merge into known ones inside one batch (same device, alias,
same email), a device changes hands, sessions continue or end after 45 minutes of quiet,
attribute values change type, the per-type cap of custom attributes is reached, consent is
granted and reset, and message ids repeat (dedup). Both sides run the same accept calls
through the real pipeline on their own database: the accept results, every routed message
(person, attributes, identities, consent, session start) and every row of the profile tables
must be equal. Profile ids are numbered in order of creation on both sides.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_helpers import PG_URL, pg_unreachable
from profile_oracle import OracleStore

from crossdock.config import AttributeRulesConfig, LoadedConfig, ProfilesConfig
from crossdock.loader import parse_config
from crossdock.models import EnrichedMessage
from crossdock.outbox import open_outbox
from crossdock.outbox.base import shared_sql
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.pipeline import AcceptResult, Pipeline
from crossdock.profiles import ProfileStore, identity

USERS = ["u1", "u2", "u3"]
DEVICES = ["a1", "a2", "a3"]
EMAILS = ["ann@example.com", "Bob@Example.com ", "cy@example.com"]
SESSIONS = ["s1", "s2"]
TABLES = ("profiles", "profile_identities", "profile_system_attributes",
          "profile_custom_attributes", "profile_consent", "profile_sessions", "profile_merges",
          "profile_rejections", "profile_stats", "profile_attribute_definitions", "dedup_keys")
#: two custom attributes of a type at most, so the cap is reached
RULES = AttributeRulesConfig(max_custom_per_type=2)
START = 1_700_000_000.0
GAPS = [0.0, 60.0, 44 * 60.0, 46 * 60.0, 5 * 3600.0]

values = st.one_of(st.none(), st.integers(0, 2), st.sampled_from(["x", "2024-05-01"]),
                   st.booleans(), st.lists(st.integers(0, 1), max_size=2))
traits = st.dictionaries(
    st.sampled_from(["email", "plan", "score", "tier", "firstName", "emailOptIn", "smsOptIn",
                     "tags", "we_hidden", "rank"]),
    values, max_size=4)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "identify", "alias", "page"]))
    raw: dict[str, Any] = {"type": kind, "timestamp": "2024-05-01T12:00:00.000Z",
                           "messageId": f"m{draw(st.integers(0, 40))}"}
    user = draw(st.none() | st.sampled_from(USERS))
    device = draw(st.none() | st.sampled_from(DEVICES))
    if user is None and device is None:
        device = DEVICES[0]
    if user is not None:
        raw["userId"] = user
    if device is not None:
        raw["anonymousId"] = device
    if kind == "track":
        raw["event"] = "Order Completed"
    if kind == "alias":
        raw["previousId"] = draw(st.sampled_from(DEVICES + USERS))
    found = draw(traits)
    if "email" in found and draw(st.booleans()):
        found["email"] = draw(st.sampled_from(EMAILS))
    context: dict[str, Any] = {}
    if kind == "identify":
        raw["traits"] = found
    elif found:
        context["traits"] = found
    if draw(st.booleans()):
        raw["sessionId"] = draw(st.sampled_from(SESSIONS))
    consent = draw(st.none() | st.dictionaries(st.sampled_from(["ads", "marketing"]),
                                               st.booleans(), max_size=2))
    if consent is not None:
        context["consent"] = {"categoryPreferences": consent}
    if context:
        raw["context"] = context
    return raw


batches = st.lists(st.tuples(st.sampled_from(GAPS), st.lists(messages(), min_size=1,
                                                             max_size=8)),
                   min_size=1, max_size=4)


class TickClock:
    """Moves 1 ms at every reading (no two messages share a time) and by hand between calls."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        self.now += 0.001
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def loaded_for(url: str, base: Path) -> LoadedConfig:
    raw = {"outbox": {"url": url},
           "destinations": {"hook": {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/"},
                                     "delivery": {"allow_private_network": True}}}}
    return parse_config(raw, base_dir=base, env={})


def run(url: str, base: Path, store_type: type[ProfileStore],
        calls: list[tuple[float, list[dict[str, Any]]]],
        monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], dict[str, list[tuple[Any, ...]]]]:
    """Every accept result and routed message, then every profile row, on a fresh store."""
    numbers = itertools.count()
    monkeypatch.setattr(identity, "new_profile_id", lambda: f"p_{next(numbers):04d}")
    clock = TickClock()
    outbox = open_outbox(url)
    routed: list[Any] = []

    def record(enriched: EnrichedMessage, destination: Any) -> dict[str, Any]:
        routed.append(enriched.to_json())
        return {"ok": True}

    try:
        store = store_type(ProfilesConfig(attributes=RULES), clock=clock)
        pipeline = Pipeline(loaded_for(url, base), outbox, store, router=record)
        results: list[Any] = []
        for gap, raws in calls:
            clock.advance(gap)
            result: AcceptResult = pipeline.accept(raws)
            results.append((result.accepted, result.duplicates, result.errors, result.rows))
        with outbox.transaction() as tx:
            db = shared_sql(tx)
            rows = {table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                    for table in TABLES}
    finally:
        outbox.close()
    return [results, routed], rows


def outbox_urls(engine: str, base: Path, n: int) -> Iterator[list[str]]:
    if engine == "sqlite":
        yield [f"sqlite:///{base / f'side{i}.db'}" for i in range(n)]
        return
    with temporary_schema(PG_URL, "crossdock_batch_a") as a, \
            temporary_schema(PG_URL, "crossdock_batch_b") as b:
        yield [a, b]


def check(engine: str, base: Path, monkeypatch: pytest.MonkeyPatch,
          calls: list[tuple[float, list[dict[str, Any]]]]) -> None:
    for urls in outbox_urls(engine, base, 2):
        expected = run(urls[0], base, OracleStore, calls, monkeypatch)
        got = run(urls[1], base, ProfileStore, calls, monkeypatch)
    assert got[0] == expected[0]
    for table in TABLES:
        assert got[1][table] == expected[1][table], table


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(calls=batches)
def test_a_batch_resolved_set_wise_equals_its_messages_resolved_one_by_one_sqlite(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    calls: list[tuple[float, list[dict[str, Any]]]],
) -> None:
    check("sqlite", tmp_path_factory.mktemp("batch"), monkeypatch, calls)


@pytest.mark.postgres
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(calls=batches)
def test_a_batch_resolved_set_wise_equals_its_messages_resolved_one_by_one_postgresql(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    calls: list[tuple[float, list[dict[str, Any]]]],
) -> None:
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    check("postgresql", tmp_path_factory.mktemp("batch"), monkeypatch, calls)


def test_the_oracle_and_the_batch_see_a_merge_inside_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One fixed case the property covers too, so a reader sees what it compares: a device's
    anonymous profile merges into the user it identifies as, in the same accept call."""
    calls: list[tuple[float, list[dict[str, Any]]]] = [(0.0, [
        {"type": "identify", "userId": "u1", "anonymousId": "a2", "messageId": "m0",
         "timestamp": "2024-05-01T12:00:00.000Z"},
        {"type": "track", "event": "A", "anonymousId": "a1", "messageId": "m1",
         "timestamp": "2024-05-01T12:00:00.000Z",
         "context": {"traits": {"plan": "free", "email": "ann@example.com"}}},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "m2",
         "timestamp": "2024-05-01T12:00:00.000Z", "traits": {"plan": 3}},
    ])]
    expected = run(f"sqlite:///{tmp_path / 'a.db'}", tmp_path, OracleStore, calls, monkeypatch)
    got = run(f"sqlite:///{tmp_path / 'b.db'}", tmp_path, ProfileStore, calls, monkeypatch)
    assert got == expected
    merges = got[1]["profile_merges"]
    assert [(m[1], m[2]) for m in merges] == [("p_0001", "p_0000")]
    # plan's type was fixed as a string by the first message: the number is refused.
    assert got[0][1][-1]["user_attributes"] == {"plan": "free", "email": "ann@example.com"}
