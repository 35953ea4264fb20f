"""The TikTok destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.tiktok import TikTokDestination
from crossdock.plugins.tiktok.fake import PREFIX, TikTokFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestTikTokConformance(DestinationConformance):
    destination = TikTokDestination
    payloads = [
        routed_payload(1, event="Purchase", traits={"email": "ada@example.com"},
                       properties={"value": 12.5, "currency": "EUR", "order_id": "o-1",
                                   "products": [{"product_id": "p1", "price": 12.5}]}),
        routed_payload(2, event="ViewContent", properties={"product_id": "p2"}),
        routed_payload(3, event="Newsletter Opened", userId=None,
                       traits={"phone": "+39 06 1234 5678"}),
    ]
    rejected_payload = routed_payload(4, event="Clicked", userId=None, anonymousId="a4")

    def fake_app(self) -> web.Application:
        return make_app(TikTokFake(access_token="test-token", pixels={"CPIXEL1"}))

    def settings(self, url: str) -> dict[str, Any]:
        return {"base_url": url + PREFIX, "access_token": "test-token",
                "event_source_id": "CPIXEL1"}
