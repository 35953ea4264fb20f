"""The SFCC destination passes the standard conformance suite (crossdock.testing), its token
endpoint included: the fake answers Account Manager's token route and the Data API on one
server."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sfcc_helpers import OPTIONS, settings

from crossdock.plugins.sfcc import SfccDestination
from crossdock.plugins.sfcc.fake import SfccFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestSfccConformance(DestinationConformance):
    destination = SfccDestination
    payloads = [
        routed_payload(1, type="identify", traits={"email": "ada@example.com",
                                                   "firstName": "Ada"}),
        routed_payload(2, type="identify", traits={"birthday": "1990-07-04", "tier": "gold"}),
        routed_payload(3, type="identify", traits={"gender": "female", "lifetime_value": 42}),
    ]
    rejected_payload = routed_payload(4, type="identify", userId=None)

    def fake_app(self) -> web.Application:
        fake = SfccFake()
        fake.register("user-1", "user-2", "user-3")
        return make_app(fake)

    def settings(self, url: str) -> dict[str, Any]:
        return settings(url)

    def mapping(self) -> dict[str, Any]:
        return {"options": OPTIONS}
