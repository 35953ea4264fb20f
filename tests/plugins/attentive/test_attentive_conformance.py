"""The Attentive destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.attentive import AttentiveDestination
from crossdock.plugins.attentive.fake import DEFAULT_SOURCE, AttentiveFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

ADA = {"email": "ada@example.com", "phone": "+1 914 844 0001"}


class TestAttentiveConformance(DestinationConformance):
    destination = AttentiveDestination
    payloads = [
        routed_payload(1, type="identify", traits={**ADA, "plan": "pro"}),
        routed_payload(2, event="Order Shipped", traits=ADA, properties={"carrier": "UPS"}),
        routed_payload(3, event="Order Completed", traits=ADA, properties={
            "currency": "USD", "products": [{"product_id": "p1", "price": 9.5}]}),
        routed_payload(4, event="User Subscribed", traits=ADA,
                       consent={"sms": True, "email": True}),
    ]
    rejected_payload = routed_payload(5, event="Clicked", userId=None, traits={})

    def fake_app(self) -> web.Application:
        return make_app(AttentiveFake(api_key="test-key"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"base_url": url, "api_key": "test-key", "sign_up_source_id": DEFAULT_SOURCE}
