"""Attentive through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: the shipped mapping's rules, consent from the profile store, and the operator's
overrides."""

from __future__ import annotations

from attentive_helpers import Harness


def identify(**traits: object) -> dict[str, object]:
    return {"type": "identify", "userId": "u-ada", "messageId": "m-identify",
            "traits": {"email": "ada@example.com", "phone": "+1 914 844 0001", **traits}}


def track(event: str, n: int = 1, **properties: object) -> dict[str, object]:
    return {"type": "track", "userId": "u-ada", "event": event, "messageId": f"m-{n}",
            "properties": properties}


async def test_the_shipped_mapping_sends_attributes_as_text_and_safe_event_keys(
        harness: Harness) -> None:
    run = await harness.run([identify(plan="pro", age=24, vip=True),
                             track("Order Shipped", 1, **{"Order ID": "o-1", "carrier": "UPS"})])
    assert run.report.delivered == 2
    (attributes,) = harness.bodies("/v1/attributes/custom")
    assert attributes["properties"] == {"age": "24", "plan": "pro", "vip": "true"}
    assert attributes["user"] == {"phone": "+19148440001", "email": "ada@example.com",
                                  "externalIdentifiers": {"clientUserId": "u-ada"}}
    (event,) = harness.bodies("/v1/events/custom")
    assert event["properties"] == {"Order_ID": "o-1", "carrier": "UPS"}
    assert event["externalEventId"] == "m-1"


async def test_a_subscription_reads_each_channel_s_consent_from_the_profile(
        harness: Harness) -> None:
    # Ada opted out of texts and into email; her subscription takes only the email.
    run = await harness.run([identify(smsOptIn=False, emailOptIn=True),
                             track("User Subscribed")])
    assert run.report.delivered == 2
    (subscription,) = harness.bodies("/v1/subscriptions")
    assert subscription["user"] == {"email": "ada@example.com"}
    assert [s["channel"] for s in harness.fake.subscriptions] == ["EMAIL"]


async def test_without_any_consent_a_subscription_is_a_dead_letter_naming_it(
        harness: Harness) -> None:
    run = await harness.run([identify(smsOptIn=False, emailOptIn=False),
                             track("User Subscribed")])
    assert (run.report.delivered, run.report.dead) == (1, 1)
    assert run.rows[1]["last_error"] == (
        "rejected: subscription: no channel to subscribe (consent 'sms' not granted; consent "
        "'email' not granted)")
    assert harness.fake.subscriptions == []


async def test_an_operator_names_the_subscribe_event_and_the_consent_it_reads(
        harness: Harness) -> None:
    run = await harness.run(
        [identify(smsOptIn=True, emailOptIn=True), track("Joined Texts")],
        mapping={"consent": ["sms"], "options": {"subscribe_events": ["Joined Texts"]}})
    assert run.report.delivered == 2
    (subscription,) = harness.bodies("/v1/subscriptions")
    assert subscription["user"] == {"phone": "+19148440001"}


async def test_e_commerce_and_the_require_consent_rule_together(harness: Harness) -> None:
    run = await harness.run(
        [identify(smsOptIn=True, emailOptIn=False),
         track("Order Completed", 2, currency="USD",
               products=[{"product_id": "p1", "price": 10, "quantity": 1}])],
        rules={"require_consent": ["sms"]})
    assert run.report.delivered == 2
    (purchase,) = harness.bodies("/v1/events/ecommerce/purchase")
    assert purchase["items"] == [{"productId": "p1", "productVariantId": "p1",
                                  "price": [{"value": 10, "currency": "USD"}], "quantity": 1}]
