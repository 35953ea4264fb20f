"""Pipedrive through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to
its contract fake: the shipped note template, the operator's custom fields and activities,
consent, and throttling answered by the engine."""

from __future__ import annotations

from pipedrive_helpers import NUMBER, Harness


def identify(n: int = 1, **traits: object) -> dict[str, object]:
    return {"type": "identify", "userId": "u-ada", "messageId": f"m-identify-{n}",
            "traits": {"email": "ada@example.com", "first_name": "Ada",
                       "last_name": "Lovelace", **traits}}


def track(event: str, n: int = 1, **properties: object) -> dict[str, object]:
    return {"type": "track", "userId": "u-ada", "event": event, "messageId": f"m-{n}",
            "timestamp": "2024-05-01T12:30:00Z", "properties": properties}


async def test_a_person_then_a_note_rendered_by_the_shipped_template(
        harness: Harness) -> None:
    run = await harness.run([identify(), track("Order Completed", 1, total=99.5,
                                               coupon="<script>")])
    assert run.report.delivered == 2
    (pid, ada), = harness.server.call(lambda: list(harness.fake.persons.items()))
    # Segment's first_name reaches the plugin as the profile's firstName.
    assert ada["name"] == "Ada Lovelace"
    (note,) = harness.server.call(lambda: list(harness.fake.notes))
    assert note["person_id"] == pid
    assert note["content"] == ("<p><b>Order Completed</b></p><p>coupon: &lt;script&gt;</p>"
                               "<p>total: 99.5</p>")
    assert note["add_time"] == "2024-05-01 12:30:00"


async def test_the_operator_s_custom_fields_and_activities(harness: Harness) -> None:
    run = await harness.run(
        [identify(lifetime_value=420), track("Demo Requested", 2)],
        mapping={"options": {"custom_fields": {"lifetime_value": {"key": NUMBER,
                                                                  "type": "number"}},
                             "activities": {"Demo Requested": "meeting"}}})
    assert run.report.delivered == 2
    (ada,) = harness.server.call(lambda: list(harness.fake.persons.values()))
    assert ada["custom_fields"] == {NUMBER: 420}
    (activity,) = harness.server.call(lambda: list(harness.fake.activities))
    assert (activity["type"], activity["subject"], activity["done"]) == (
        "meeting", "Demo Requested", True)


async def test_marketing_status_reads_the_email_consent_of_the_profile(
        harness: Harness) -> None:
    run = await harness.run([identify(emailOptIn=False)],
                            settings={"marketing_status": True})
    assert run.report.delivered == 1
    (ada,) = harness.server.call(lambda: list(harness.fake.persons.values()))
    assert ada["marketing_status"] == "no_consent"


async def test_a_throttled_search_is_retried_not_lost(harness: Harness) -> None:
    harness.fake.script([{"status": 429, "body": '{"success": false, "error": "Request over '
                                                 'limit"}', "headers": {"Retry-After": "2"}}])
    run = await harness.run([identify()], deliveries=2)
    first, second = run.reports
    assert (first.retried, second.delivered) == (1, 1)
    assert run.rows[0]["state"] == "delivered" and run.rows[0]["attempts"] == 2
    assert harness.fake.statuses() == [429, 200, 200]


async def test_an_event_whose_answer_was_lost_is_one_note(harness: Harness) -> None:
    # Pipedrive adds the note but its answer is lost; the outbox retries the row, and the
    # retry finds the note instead of adding a second one.
    harness.server.call(lambda: setattr(harness.fake, "lost_answers", 1))
    run = await harness.run([identify(), track("Order Completed", 1, total=99.5)],
                            deliveries=2)
    assert [r.delivered for r in run.reports] == [1, 1]
    assert [(r["state"], r["attempts"]) for r in run.rows] == [("delivered", 1),
                                                                ("delivered", 2)]
    assert len(harness.server.call(lambda: list(harness.fake.notes))) == 1
