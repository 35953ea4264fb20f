"""The SFMC destination passes the standard conformance suite (crossdock.testing), its token
endpoint included: the fake answers the token route and the REST routes on one server."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sfmc_helpers import OPTIONS, settings

from crossdock.plugins.sfmc import SfmcDestination
from crossdock.plugins.sfmc.fake import make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

ADA = {"email": "ada@example.com", "firstName": "Ada"}


class TestSfmcConformance(DestinationConformance):
    destination = SfmcDestination
    payloads = [
        routed_payload(1, type="identify", traits=ADA),
        routed_payload(2, type="identify", traits={"email": "bo@example.com", "plan": "pro"}),
        routed_payload(3, event="Order Completed", properties={"price": 42}),
        routed_payload(4, event="Signed Up", properties={"plan": "pro"}),
    ]
    rejected_payload = routed_payload(5, event="Clicked", userId=None)

    def fake_app(self) -> web.Application:
        return make_app()

    def settings(self, url: str) -> dict[str, Any]:
        return settings(url, account_id="514009999")

    def mapping(self) -> dict[str, Any]:
        return {"options": {**OPTIONS, "default_journey": "Crossdock-Events"}}
