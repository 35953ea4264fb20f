"""The Cordial destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.cordial import CordialDestination
from crossdock.plugins.cordial.fake import PREFIX, CordialFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

ADA = {"email": "ada@example.com", "firstName": "Ada"}


class TestCordialConformance(DestinationConformance):
    destination = CordialDestination
    payloads = [
        routed_payload(1, type="identify", traits=ADA, consent={"email": True}),
        routed_payload(2, event="Order Shipped", traits=ADA, properties={"sku": "s1"}),
        routed_payload(3, event="Signed Up", traits={"email": "bo@example.com"}),
    ]
    rejected_payload = routed_payload(4, event="Clicked", traits={})

    def fake_app(self) -> web.Application:
        return make_app(CordialFake(api_key="test-key"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"base_url": url + PREFIX, "api_key": "test-key"}
