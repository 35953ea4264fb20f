"""Amplitude through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: the session the profile store knows becomes session_id, identify's traits
become user property operations, and the operator's mapping changes what is sent."""

from __future__ import annotations

from datetime import datetime

from amplitude_helpers import Harness


def track(event: str, n: int, **fields: object) -> dict[str, object]:
    return {"type": "track", "userId": "user-ada", "anonymousId": "anon-ada-1",
            "event": event, "messageId": f"m-{n}", **fields}


async def test_events_of_one_session_share_its_start_as_session_id(harness: Harness) -> None:
    run = await harness.run([
        track("Signed Up", 1, sessionId="s-1"),
        track("Order Completed", 2, sessionId="s-1", properties={"revenue": 30}),
        track("Logged Out", 3)])
    assert run.report.delivered == 3
    first, second, third = sorted(harness.events(), key=lambda e: e["insert_id"])
    assert [e["insert_id"] for e in (first, second, third)] == ["m-1", "m-2", "m-3"]
    assert first["session_id"] == second["session_id"]
    # The start as the profile store took it: now, in milliseconds.
    started = datetime.fromtimestamp(first["session_id"] / 1000)
    assert abs((datetime.now() - started).total_seconds()) < 60
    assert "session_id" not in third
    assert second["revenue"] == 30 and second["user_id"] == "user-ada"


async def test_identify_traits_become_user_property_operations(harness: Harness) -> None:
    mapping = {"event_names": {"Order Completed": "Purchase"},
               "options": {"user_properties": {"set_once": ["referrer"],
                                               "add": {"orders": "properties.items"}}}}
    run = await harness.run([
        {"type": "identify", "userId": "user-ada", "messageId": "i-1",
         "traits": {"plan": "pro", "referrer": "newsletter"}},
        track("Order Completed", 2, properties={"items": 2})], mapping=mapping)
    assert run.report.delivered == 2
    run = await harness.run([
        {"type": "identify", "userId": "user-ada", "messageId": "i-2",
         "traits": {"plan": "max", "referrer": "ads"}},
        track("Order Completed", 3, properties={"items": 1})], mapping=mapping)
    assert run.report.delivered == 2
    assert harness.users()["user-ada"] == {"plan": "max", "referrer": "newsletter",
                                           "orders": 3}
    assert {e["event_type"] for e in harness.events()} == {"Purchase"}


async def test_a_message_without_an_id_amplitude_takes_is_a_dead_letter(
        harness: Harness) -> None:
    run = await harness.run([{"type": "track", "userId": "u1", "event": "Clicked",
                              "messageId": "m-short"}])
    assert run.report.dead == 1
    (row,) = run.rows
    assert "Amplitude needs one of at least 5 characters" in str(row["last_error"])
    # The project's own minimum lets it through.
    run = await harness.run([{"type": "track", "userId": "u1", "event": "Clicked",
                              "messageId": "m-short-2"}], settings={"min_id_length": 2})
    assert run.report.delivered == 1


async def test_the_engine_splits_a_batch_amplitude_finds_too_large(harness: Harness) -> None:
    """413 through the real engine: the first half goes again in the same attempt (a
    follow-up), the second half is retried at once, in the next batch of the same pass."""
    harness.fake.max_events = 2
    people = [track("Clicked", n, userId=f"user-{n:04d}", anonymousId=None)
              for n in range(1, 5)]
    run = await harness.run(people, delivery={"batch_size": 4})
    assert (run.report.delivered, run.report.retried, run.report.requests) == (4, 2, 3)
    assert run.report.dead == 0
    assert sorted(e["insert_id"] for e in harness.events()) == ["m-1", "m-2", "m-3", "m-4"]
    assert harness.fake.statuses() == [413, 200, 200]
