"""TikTok through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: Segment's e-commerce events become TikTok's standard events, the person's
email from the profile store is hashed, and the operator's mapping changes the names."""

from __future__ import annotations

import hashlib

from tiktok_helpers import Harness


def order(n: int, **fields: object) -> dict[str, object]:
    return {"type": "track", "userId": "user-ada", "event": "Order Completed",
            "messageId": f"m-{n}", "properties": {"order_id": f"o-{n}", "revenue": 30,
                                                  "currency": "usd"}, **fields}


async def test_an_order_is_a_purchase_matched_by_the_profile_s_email(harness: Harness) -> None:
    run = await harness.run([
        {"type": "identify", "userId": "user-ada", "messageId": "i-1",
         "traits": {"email": "Ada@Example.com"}},
        order(1), {"type": "track", "userId": "user-ada", "event": "Product Viewed",
                   "messageId": "m-2", "properties": {"product_id": "p1"}}])
    # identify is not a TikTok message type: two events delivered.
    assert run.report.delivered == 2
    purchase, viewed = harness.events()
    assert purchase["event"] == "Purchase" and viewed["event"] == "ViewContent"
    assert purchase["user"]["email"] == hashlib.sha256(b"ada@example.com").hexdigest()
    assert purchase["event_id"] == "m-1"
    assert purchase["properties"] == {"currency": "USD", "value": 30, "order_id": "o-1"}


async def test_the_operator_renames_events_and_unmatched_people_are_dead_letters(
        harness: Harness) -> None:
    run = await harness.run(
        [order(1), {"type": "track", "anonymousId": "anon-1", "event": "Order Completed",
                    "messageId": "m-anon"}],
        mapping={"event_names": {"Order Completed": "CompletePayment"}})
    assert (run.report.delivered, run.report.dead) == (1, 1)
    assert [e["event"] for e in harness.events()] == ["CompletePayment"]
