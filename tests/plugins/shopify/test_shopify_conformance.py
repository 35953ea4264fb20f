"""The Shopify destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.shopify import ShopifyDestination
from crossdock.plugins.shopify.fake import ShopifyFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

ADA = {"email": "ada@example.com", "firstName": "Ada", "phone": "+14155550101"}


class TestShopifyConformance(DestinationConformance):
    destination = ShopifyDestination
    payloads = [
        routed_payload(1, type="identify", traits=ADA, consent={"email": True, "sms": True}),
        routed_payload(2, event="audience_entered", traits=ADA,
                       properties={"audience": "high_value"}),
        routed_payload(3, type="identify", traits={"email": "bo@example.com"}),
    ]
    rejected_payload = routed_payload(4, type="identify", traits={"firstName": "Anon"})

    def fake_app(self) -> web.Application:
        return make_app(ShopifyFake(token="shpat_conformance"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"shop": "conformance", "base_url": url, "access_token": "shpat_conformance"}
