"""Shopify through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: consent from the profile store decides the marketing states, phones are read
by crossdock.phones, and the fake's cost bucket throttles and is waited for."""

from __future__ import annotations

from shopify_helpers import Harness


def identify(n: int = 1, **traits: object) -> dict[str, object]:
    return {"type": "identify", "userId": "u-ada", "messageId": f"m-identify-{n}",
            "traits": {"email": "ada@example.com", "firstName": "Ada", **traits}}


async def test_consent_changes_reach_the_customer_s_marketing_states(harness: Harness) -> None:
    run = await harness.run([identify(1, emailOptIn=True, phone="(415) 555-0101")],
                            mapping={"options": {"phone_region": "US"}})
    assert run.report.delivered == 1
    customer = harness.customer("ada@example.com")
    assert customer["phone"] == "+14155550101"
    assert customer["emailMarketingConsent"]["marketingState"] == "SUBSCRIBED"
    run = await harness.run([identify(2, emailOptIn=False, lastName="Lovelace")])
    assert run.report.delivered == 1
    customer = harness.customer("ada@example.com")
    assert customer["emailMarketingConsent"]["marketingState"] == "UNSUBSCRIBED"
    assert (customer["firstName"], customer["lastName"]) == ("Ada", "Lovelace")
    assert len(harness.fake.customers) == 1


async def test_a_throttled_answer_is_retried_not_dead(harness: Harness) -> None:
    harness.fake.maximum, harness.fake.restore_rate = 5.0, 1.0
    run = await harness.run([identify(1)])
    # find (2) fits, create (10) does not: retried after the bucket refills, never dead
    assert (run.report.delivered, run.report.dead) == (0, 0)
    assert run.report.retried == 1
    assert harness.fake.customers == {}
