"""Brevo through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: consent from the profile store decides lists and blacklists, the shipped key
rule and event names, and the operator's overrides."""

from __future__ import annotations

from brevo_helpers import Harness


def identify(n: int = 1, **traits: object) -> dict[str, object]:
    return {"type": "identify", "userId": "u-ada", "messageId": f"m-identify-{n}",
            "traits": {"email": "ada@example.com", "firstName": "Ada", **traits}}


def track(event: str, n: int = 1, **properties: object) -> dict[str, object]:
    return {"type": "track", "userId": "u-ada", "event": event, "messageId": f"m-{n}",
            "properties": properties}


async def test_opting_in_joins_the_lists_and_opting_out_blacklists(harness: Harness) -> None:
    run = await harness.run([identify(1, emailOptIn=True)], settings={"list_ids": [2]})
    assert run.report.delivered == 1
    contact = harness.contact("ada@example.com")
    assert contact["listIds"] == [2] and contact["emailBlacklisted"] is False
    run = await harness.run([identify(2, emailOptIn=False)], settings={"list_ids": [2]})
    assert run.report.delivered == 1
    assert harness.contact("ada@example.com")["emailBlacklisted"] is True


async def test_events_get_the_shipped_key_rule_and_name_rule_and_the_operator_s_attributes(
        harness: Harness) -> None:
    run = await harness.run(
        [identify(1, emailOptIn=True, plan="pro"),
         track("Order Shipped", 1, **{"shoes.color": "red", "order id": "o-1"})],
        mapping={"options": {"attributes": {"plan": "PLAN"}}})
    assert run.report.delivered == 2
    # The operator's attributes are merged into the shipped ones.
    assert harness.contact("ada@example.com")["attributes"] == {"FIRSTNAME": "Ada",
                                                                "PLAN": "pro"}
    (event,) = harness.server.call(lambda: list(harness.fake.events))
    assert event["event_name"] == "Order_Shipped"
    assert event["identifiers"] == {"email_id": "ada@example.com"}
    assert event["event_properties"] == {"shoes_color": "red", "order_id": "o-1"}


async def test_double_opt_in_through_the_pipeline(harness: Harness) -> None:
    settings = {"list_ids": [2], "double_opt_in": {
        "template_id": 11, "redirection_url": "https://example.com/confirmed"}}
    run = await harness.run([identify(1, emailOptIn=True)], settings=settings)
    assert run.report.delivered == 1 and run.report.requests == 2
    (doi,) = harness.server.call(lambda: list(harness.fake.doi_sent))
    assert doi["email"] == "ada@example.com" and doi["includeListIds"] == [2]
