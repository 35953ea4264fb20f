"""The Brevo destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.brevo import BrevoDestination
from crossdock.plugins.brevo.fake import PREFIX, BrevoFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

ADA = {"email": "ada@example.com", "firstName": "Ada"}
KEY = "xkeysib-conformance"


class TestBrevoConformance(DestinationConformance):
    destination = BrevoDestination
    payloads = [
        routed_payload(1, type="identify", traits=ADA, consent={"email": True}),
        routed_payload(2, event="Order Shipped", traits=ADA, properties={"sku": "s1"}),
        routed_payload(3, event="Signed Up", traits={"email": "bo@example.com"}),
    ]
    rejected_payload = routed_payload(4, event="Clicked", traits={})

    def fake_app(self) -> web.Application:
        return make_app(BrevoFake(api_key=KEY))

    def settings(self, url: str) -> dict[str, Any]:
        return {"base_url": url + PREFIX, "api_key": KEY, "list_ids": [2]}


class TestBrevoDoubleOptInConformance(TestBrevoConformance):
    """The same checks with double opt-in: identifies read first, then confirm or update."""

    def settings(self, url: str) -> dict[str, Any]:
        return {**super().settings(url), "double_opt_in": {
            "template_id": 11, "redirection_url": "https://example.com/confirmed"}}
