"""accept -> profile -> route -> outbox: bad messages by index, one transaction per call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossdock.config import LoadedConfig
from crossdock.errors import MessageError
from crossdock.models import EnrichedMessage, Message, enrich_without_profile, parse_message
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import AcceptResult, Pipeline, build_pipeline, person_key
from crossdock.profiles.consent import message_consent

MakeLoaded = Callable[..., LoadedConfig]
URL = "http://127.0.0.1:9/hook"


def track(message_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "userId": "u1",
            "messageId": message_id, **extra}


def test_bad_messages_are_reported_by_index_and_the_good_ones_kept(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    pipeline = Pipeline(make_loaded(URL), outbox, router=route)
    result = pipeline.accept([
        track("a"),
        {"type": "track", "userId": "u1"},
        "not an object",
        {"type": "track", "event": "X", "userId": "u" * 101, "messageId": "c"},
        track("b"),
    ])
    assert result.accepted == ["a", "b"]
    assert result.rows == 2
    assert [index for index, _ in result.errors] == [1, 2, 3]
    assert result.errors[0][1] == ["event: is required"]
    assert result.errors[1][1] == ["message: must be a JSON object, got str"]
    assert "userId" in result.errors[2][1][0] and "100 characters" in result.errors[2][1][0]
    assert outbox.counts()["echo"].queued == 2
    row = outbox.row("echo", "a")
    assert row is not None and row["payload"]["message"]["event"] == "Order Completed"


def test_repeated_message_ids_are_duplicates_not_new_rows(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    pipeline = Pipeline(make_loaded(URL), outbox, router=route)
    first = pipeline.accept([track("a"), track("a"), track("b")])
    assert (first.accepted, first.duplicates, first.rows) == (["a", "b"], ["a"], 2)
    again = pipeline.accept([track("b"), track("c")])
    assert (again.accepted, again.duplicates, again.rows) == (["c"], ["b"], 1)


def test_a_route_failure_rolls_back_the_whole_call_profile_writes_included(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    class Batch:
        def __init__(self, db: Any) -> None:
            self.db = db

        def seen(self, message_id: str) -> bool:
            return False

        def resolve(self, message: Message) -> list[EnrichedMessage]:
            self.db["test_profiles"].insert({"message_id": message.message_id})
            return [enrich_without_profile(message.to_json())]

        def flush(self) -> None:
            pass

    class Profiles:
        def prepare(self, db: Any, messages: list[Message]) -> Batch:
            return Batch(db)

    def failing_route(enriched: EnrichedMessage, destination: Any) -> Any:
        if enriched.message["messageId"] == "b":
            raise RuntimeError("template blew up")
        return route(enriched, destination)

    outbox.db.execute("CREATE TABLE test_profiles (message_id TEXT)")
    pipeline = Pipeline(make_loaded(URL), outbox, Profiles(), router=failing_route)
    with pytest.raises(RuntimeError, match="template blew up"):
        pipeline.accept([track("a"), track("b")])
    assert outbox.counts() == {}
    assert outbox.db.execute("SELECT COUNT(*) FROM test_profiles").fetchone()[0] == 0
    # The same pipeline and connection keep working afterwards.
    ok = pipeline.accept([track("a")])
    assert ok.rows == 1
    assert outbox.db.execute("SELECT COUNT(*) FROM test_profiles").fetchone()[0] == 1


def test_the_profile_hook_rejects_dedups_and_adds_system_events(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    class Batch:
        def flush(self) -> None:
            pass

        def seen(self, message_id: str) -> bool:
            return message_id == "old"

        def resolve(self, message: Message) -> list[EnrichedMessage]:
            if message.user_id == "banned":
                raise MessageError(["userId: is blocked"])
            enriched = enrich_without_profile(message.to_json())
            end = {**message.to_json(), "event": "session_end",
                   "messageId": f"{message.message_id}-end"}
            return [enriched, EnrichedMessage(end, system=True)]

    class Profiles:
        def prepare(self, db: Any, messages: list[Message]) -> Batch:
            return Batch()

    pipeline = Pipeline(make_loaded(URL), outbox, Profiles(), router=route)
    result = pipeline.accept([track("a"), track("old"), track("x", userId="banned")])
    assert result.accepted == ["a"]
    assert result.duplicates == ["old"]
    assert result.errors == [(2, ["userId: is blocked"])]
    assert result.rows == 2
    assert outbox.row("echo", "a-end") is not None


def test_a_message_error_from_routing_names_the_destination(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded,
) -> None:
    def strict_route(enriched: EnrichedMessage, destination: Any) -> Any:
        raise MessageError(["properties.total: must be a number"])

    pipeline = Pipeline(make_loaded(URL), outbox, router=strict_route)
    result = pipeline.accept([track("a")])
    assert result.errors == [(0, ["echo: properties.total: must be a number"])]
    assert outbox.counts() == {}


def test_skipped_messages_and_unsupported_types_make_no_rows(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    class Skip:
        def __init__(self, reason: str) -> None:
            self.reason = reason

    loaded = make_loaded(URL)
    loaded.destinations[0].plugin.message_types = frozenset({"track", "identify"})

    def choosy(enriched: EnrichedMessage, destination: Any) -> Any:
        if enriched.message.get("event") == "Ignored":
            return Skip("event not allowed")
        return route(enriched, destination)

    pipeline = Pipeline(loaded, outbox, router=choosy, skip_type=Skip)
    result = pipeline.accept([track("a"), track("b", event="Ignored"),
                              {"type": "page", "userId": "u", "messageId": "p"}])
    assert result.accepted == ["a", "b", "p"]
    assert result.rows == 1


def test_on_commit_names_destinations_with_new_rows_after_the_commit(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any, tmp_path: Any,
) -> None:
    seen_by_other_connection: list[int] = []
    woken: list[set[str]] = []

    def on_commit(destinations: set[str]) -> None:
        other = SQLiteOutbox(tmp_path / "crossdock.db")
        seen_by_other_connection.append(other.counts()["echo"].queued)
        other.close()
        woken.append(destinations)

    pipeline = Pipeline(make_loaded(URL), outbox, router=route, on_commit=on_commit)
    pipeline.accept([track("a")])
    pipeline.accept([track("a")])  # nothing new: nobody to wake
    assert woken == [{"echo"}]
    assert seen_by_other_connection == [1]


def test_accept_iter_commits_in_chunks_with_progress_and_stream_indexes(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    raws: list[Any] = [track(f"m{i}") for i in range(10)]
    raws[7] = {"type": "nope"}
    progress: list[tuple[int, int]] = []

    def report(done: int, chunk: AcceptResult) -> None:
        progress.append((done, outbox.counts()["echo"].queued))

    pipeline = Pipeline(make_loaded(URL), outbox, router=route)
    total = pipeline.accept_iter(iter(raws), chunk_size=3, progress=report)
    assert progress == [(3, 3), (6, 6), (9, 8), (10, 9)]
    assert [index for index, _ in total.errors] == [7]
    assert total.rows == 9 and len(total.accepted) == 9


def test_build_pipeline_with_the_real_router(make_loaded: MakeLoaded, tmp_path: Any) -> None:
    pytest.importorskip("crossdock.route.router")
    pipeline = build_pipeline(make_loaded(URL))
    try:
        result = pipeline.accept([track("a")])
        assert result.accepted == ["a"]
        assert isinstance(pipeline.outbox, SQLiteOutbox)
        assert (tmp_path / "crossdock.db").exists()
    finally:
        pipeline.close()


def test_deep_and_non_finite_values_cost_their_message_alone(make_loaded: MakeLoaded) -> None:
    # Through the Python API, with the profile store and the real router: 300 levels could
    # not be serialized and the whole call failed; NaN was stored as null.
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    cycle: dict[str, Any] = {}
    cycle["again"] = [cycle]
    pipeline = build_pipeline(make_loaded(URL))
    try:
        result = pipeline.accept([
            track("a"), track("deep", properties={"d": deep}),
            track("nan", properties={"p": float("nan")}), track("cycle", context=cycle),
            track("b", properties={"p": 1e308}),
        ])
    finally:
        pipeline.close()
    assert result.accepted == ["a", "b"]
    assert [(index, problems[0].split(": ")[0].split(".")[:3])
            for index, problems in result.errors] == [
        (1, ["properties", "d", "a"]), (2, ["properties", "p"]), (3, ["context", "again", "0"])]


def test_accept_enriched_routes_system_events_and_wakes_their_destinations(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    woken: list[set[str]] = []
    pipeline = Pipeline(make_loaded(URL), outbox, router=route, on_commit=woken.append)
    end = EnrichedMessage({"type": "track", "event": "session_end", "userId": "u1",
                           "messageId": "s1-end"}, system=True)
    assert pipeline.accept_enriched([end]) == 1
    assert pipeline.accept_enriched([end]) == 0
    assert woken == [{"echo"}]
    row = outbox.row("echo", "s1-end")
    assert row is not None and row["payload"]["message"]["event"] == "session_end"


def test_each_row_keeps_whom_its_message_is_about_for_per_person_order(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, route: Any,
) -> None:
    pipeline = Pipeline(make_loaded(URL), outbox, router=route)
    pipeline.accept([track("known"), track("both", anonymousId="a9"),
                     {"type": "track", "event": "E", "anonymousId": "a1", "messageId": "anon"}])
    persons = {m: outbox.row("echo", m)["person"]  # type: ignore[index]
               for m in ("known", "both", "anon")}
    # Without a profile store a person is their userId, else their anonymousId.
    assert persons == {"known": "p:u1", "both": "p:u1", "anon": "p:a1"}
    # With one it is the profile: every id of theirs keeps one order.
    profiled = EnrichedMessage(message={"userId": "u1", "anonymousId": "a1"}, profile_id="p7")
    assert person_key(profiled) == "p:p7"
    assert person_key(EnrichedMessage(message={"userId": "u2"})) == "u:u2"
    assert person_key(EnrichedMessage(message={"type": "track"})) is None


_TRAIT_NAMES = ["email", "plan", "emailOptIn", "email_opt_in", "smsOptIn", "sms_opt_in",
                "whatsappOptIn", "whatsapp_opt_in", "first_name", "$Mobile"]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traits=st.dictionaries(st.sampled_from(_TRAIT_NAMES),
                              st.sampled_from([True, False, None, "yes"]), max_size=4),
       consent=st.sampled_from([None, {"categoryPreferences": {"ads": True, "email": False}},
                                {"sms": False}, ["marketing"], "odd"]),
       defaults=st.dictionaries(st.sampled_from(["email", "sms", "whatsapp", "ads"]),
                                st.booleans(), max_size=4))
def test_consent_without_a_profile_store_is_message_consent(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, traits: dict[str, Any],
    consent: Any, defaults: dict[str, bool],
) -> None:
    loaded = make_loaded(URL)
    loaded.config.profiles.consent_defaults = defaults
    context: dict[str, Any] = {"traits": traits}
    if consent is not None:
        context["consent"] = consent
    message = parse_message(track("m", context=context))
    enriched = Pipeline(loaded, outbox)._enrich_alone(message)
    assert enriched.consent == message_consent(context, traits, defaults)
