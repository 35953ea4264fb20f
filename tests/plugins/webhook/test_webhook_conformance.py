"""The webhook destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from webhook_helpers import SECRET

from crossdock.plugins.webhook import WebhookDestination
from crossdock.plugins.webhook.fake import WebhookFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestWebhookConformance(DestinationConformance):
    destination = WebhookDestination
    payloads = [
        routed_payload(1, event="Order Completed", properties={"total": 42.5}),
        routed_payload(2, type="identify", traits={"plan": "pro", "email": "a@example.com"}),
        routed_payload(3, type="group", groupId="g-1", groupTraits={"name": "ACME"}),
    ]
    rejected_payload = routed_payload(4, event="Broken", rendered={"body": "{not json"})

    def fake_app(self) -> web.Application:
        return make_app(WebhookFake(secret=SECRET))

    def settings(self, url: str) -> dict[str, Any]:
        return {"url": f"{url}/hook", "secret": SECRET}
