"""The Amplitude destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.amplitude import AmplitudeDestination
from crossdock.plugins.amplitude.fake import AmplitudeFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestAmplitudeConformance(DestinationConformance):
    destination = AmplitudeDestination
    payloads = [
        routed_payload(1, event="Order Completed", properties={"revenue": 12.5},
                       sessionStart="2024-05-01T11:00:00Z"),
        routed_payload(2, type="identify", traits={"plan": "pro", "firstName": "Ada"}),
        routed_payload(3, type="page", event="Home", userId=None, anonymousId="anon-3333"),
    ]
    rejected_payload = routed_payload(4, event="Clicked", userId="u4", anonymousId=None)

    def fake_app(self) -> web.Application:
        return make_app(AmplitudeFake(api_key="test-key"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"base_url": url, "api_key": "test-key"}
