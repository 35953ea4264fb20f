"""The Facebook Custom Audience destination passes the standard conformance suite
(crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.facebook_audience import FacebookAudienceDestination
from crossdock.plugins.facebook_audience.fake import (
    DEFAULT_AUDIENCE,
    DEFAULT_TOKEN,
    FacebookAudienceFake,
    make_app,
)
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

APP_SECRET = "fake-app-secret"


class TestFacebookAudienceConformance(DestinationConformance):
    destination = FacebookAudienceDestination
    payloads = [
        routed_payload(1, event="audience_entered", traits={"email": "ada@example.com",
                                                            "firstName": "Ada"}),
        routed_payload(2, event="audience_entered", traits={"email": "grace@example.com"}),
        routed_payload(3, event="audience_exited", traits={"email": "alan@example.com"}),
    ]
    rejected_payload = routed_payload(4, event="Order Completed",
                                      traits={"email": "ada@example.com"})

    def fake_app(self) -> web.Application:
        return make_app(FacebookAudienceFake(app_secret=APP_SECRET))

    def settings(self, url: str) -> dict[str, Any]:
        return {"audience_id": DEFAULT_AUDIENCE, "access_token": DEFAULT_TOKEN,
                "app_secret": APP_SECRET, "graph_url": url}
