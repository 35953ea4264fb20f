"""Cordial through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: consent from the profile store decides each channel's status, the shipped key
rule, and the operator's overrides."""

from __future__ import annotations

from cordial_helpers import Harness


def identify(n: int = 1, **traits: object) -> dict[str, object]:
    return {"type": "identify", "userId": "u-ada", "messageId": f"m-identify-{n}",
            "traits": {"email": "ada@example.com", "firstName": "Ada", **traits}}


def track(event: str, n: int = 1, **properties: object) -> dict[str, object]:
    return {"type": "track", "userId": "u-ada", "event": event, "messageId": f"m-{n}",
            "properties": properties}


async def test_opting_in_then_out_subscribes_then_unsubscribes_the_email(
        harness: Harness) -> None:
    run = await harness.run([identify(1, emailOptIn=True)])
    assert run.report.delivered == 1
    assert harness.contact("ada@example.com")["channels"]["email"]["subscribeStatus"] == (
        "subscribed")
    run = await harness.run([identify(2, emailOptIn=False)])
    assert run.report.delivered == 1
    assert harness.contact("ada@example.com")["channels"]["email"]["subscribeStatus"] == (
        "unsubscribed")


async def test_an_unsubscribe_made_in_cordial_holds_unless_forced(harness: Harness) -> None:
    await harness.run([identify(1, emailOptIn=True)])
    harness.server.call(lambda: harness.fake.contacts["ada@example.com"]["channels"]["email"]
                        .update(subscribeStatus="unsubscribed"))
    await harness.run([identify(2, emailOptIn=True, plan="pro")])
    contact = harness.contact("ada@example.com")
    assert contact["channels"]["email"]["subscribeStatus"] == "unsubscribed"
    run = await harness.run([identify(3, emailOptIn=True)],
                            settings={"force_subscribe": True})
    assert run.report.delivered == 1
    assert harness.contact("ada@example.com")["channels"]["email"]["subscribeStatus"] == (
        "subscribed")


async def test_activities_get_the_shipped_key_rule_and_the_operator_s_attributes(
        harness: Harness) -> None:
    run = await harness.run(
        [identify(1, emailOptIn=True, plan="pro"),
         track("Order Shipped", 1, **{"shoes.color": "red", "order id": "o-1"})],
        mapping={"options": {"attributes": {"plan": "plan"}}})
    assert run.report.delivered == 2
    contact = harness.contact("ada@example.com")
    # The operator's attributes are merged into the shipped ones.
    assert contact["attributes"] == {"first_name": "Ada", "plan": "pro"}
    (activity,) = harness.server.call(lambda: list(harness.fake.activities))
    assert activity["a"] == "Order Shipped"
    assert activity["properties"] == {"shoes_color": "red", "order_id": "o-1"}
    assert harness.fake.stripped == []


async def test_an_event_before_any_identify_creates_the_contact(harness: Harness) -> None:
    run = await harness.run([
        {"type": "track", "userId": "u-bo", "event": "Signed Up", "messageId": "m-1",
         "context": {"traits": {"email": "bo@example.com"}}}])
    assert run.report.delivered == 1 and run.report.requests == 3
    assert "bo@example.com" in harness.server.call(lambda: dict(harness.fake.contacts))
