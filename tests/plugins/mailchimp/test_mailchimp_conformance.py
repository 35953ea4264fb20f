"""The Mailchimp destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.mailchimp import MailchimpDestination
from crossdock.plugins.mailchimp.fake import DEFAULT_KEY, DEFAULT_LIST, MailchimpFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestMailchimpConformance(DestinationConformance):
    destination = MailchimpDestination
    payloads = [
        routed_payload(1, type="identify", traits={"email": "ada@example.com",
                                                   "firstName": "Ada"}),
        routed_payload(2, type="identify", traits={"email": "grace@example.com",
                                                   "subscriptionStatus": "subscribed"}),
        routed_payload(3, type="identify", traits={"email": "alan@example.com",
                                                   "subscriptionStatus": "subscribed"}),
        routed_payload(4, event="audience_entered", properties={"audience": "vip"},
                       traits={"email": "ada@example.com"}),
        routed_payload(5, event="Order Completed", properties={"total": 42},
                       traits={"email": "ada@example.com"}),
    ]
    rejected_payload = routed_payload(6, type="identify", traits={"plan": "pro"})

    def fake_app(self) -> web.Application:
        return make_app(MailchimpFake())

    def settings(self, url: str) -> dict[str, Any]:
        return {"api_key": DEFAULT_KEY, "list_id": DEFAULT_LIST, "base_url": f"{url}/3.0"}
