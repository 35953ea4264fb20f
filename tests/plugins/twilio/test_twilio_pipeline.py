"""Twilio through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: only the filter's events, only people who opted in to SMS, the operator's
body template."""

from __future__ import annotations

from twilio_helpers import Harness


def identify(user: str, phone: str, sms: bool) -> dict[str, object]:
    return {"type": "identify", "userId": user, "messageId": f"m-identify-{user}",
            "traits": {"phone": phone, "smsOptIn": sms}}


def track(user: str, event: str, n: int, **properties: object) -> dict[str, object]:
    return {"type": "track", "userId": user, "event": event, "messageId": f"m-{user}-{n}",
            "properties": properties}


async def test_an_sms_per_allowed_event_to_people_who_opted_in(harness: Harness) -> None:
    run = await harness.run(
        [identify("u-grace", "+1 914 844 0001", True), identify("u-alan", "+1 914 844 0002",
                                                                False),
         track("u-grace", "Order Shipped", 1, order_id="o-1"),
         track("u-grace", "Product Viewed", 2),
         track("u-alan", "Order Shipped", 3, order_id="o-2")],
        events=["Order Shipped"])
    # Grace's shipped order only: Alan did not opt in, a viewed product is not allowed.
    assert run.report.delivered == 1 and run.report.dead == 0
    (message,) = harness.messages()
    assert message["to"] == "+19148440001"
    assert message["body"] == "Order Shipped (order o-1)"  # the shipped template


async def test_the_operator_s_body_template(harness: Harness) -> None:
    run = await harness.run(
        [identify("u-grace", "+1 914 844 0001", True),
         track("u-grace", "Order Shipped", 1, order_id="o-7")],
        events=["Order Shipped"],
        mapping={"templates": {"body": "Hi! Order {{ properties.order_id }} is on its way."}})
    assert run.report.delivered == 1
    assert harness.messages()[0]["body"] == "Hi! Order o-7 is on its way."


async def test_a_retry_after_a_lost_answer_sends_one_sms(harness: Harness) -> None:
    # Twilio takes the SMS but its answer is lost: the outbox retries the row, and the retry
    # finds the SMS in Twilio's list instead of texting the person a second time.
    harness.server.call(lambda: setattr(harness.fake, "lost_answers", 1))
    run = await harness.run_twice(
        [identify("u-grace", "+1 914 844 0001", True),
         track("u-grace", "Order Shipped", 1, order_id="o-1")],
        events=["Order Shipped"])
    assert [r.delivered for r in run.reports] == [0, 1]
    (row,) = run.rows
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert [m["body"] for m in harness.messages()] == ["Order Shipped (order o-1)"]
