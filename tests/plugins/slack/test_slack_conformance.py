"""The Slack destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.slack import SlackDestination
from crossdock.plugins.slack.fake import SlackFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestSlackConformance(DestinationConformance):
    destination = SlackDestination
    payloads = [
        routed_payload(1, event="Order Completed", rendered={"text": "Order #1 completed"}),
        routed_payload(2, type="page", name="Pricing", rendered={"text": "u viewed Pricing"}),
    ]
    rejected_payload = routed_payload(3, rendered={"text": "x", "blocks": "[{not json"})

    def fake_app(self) -> web.Application:
        return make_app(SlackFake(rate_limit=None))

    def settings(self, url: str) -> dict[str, Any]:
        return {"webhook_url": SlackFake().url(url), "allow_any_host": True}
