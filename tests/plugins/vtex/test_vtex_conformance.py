"""The VTEX destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.vtex import VtexDestination
from crossdock.plugins.vtex.fake import VtexFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestVtexConformance(DestinationConformance):
    destination = VtexDestination
    payloads = [
        routed_payload(1, type="identify", traits={"email": "ada@example.com",
                                                   "firstName": "Ada"},
                       consent={"email": True}),
        routed_payload(2, type="identify", traits={"email": "bo@example.com",
                                                   "phone": "+5511912345678"}),
    ]
    rejected_payload = routed_payload(3, type="identify", traits={"firstName": "Anon"})

    def fake_app(self) -> web.Application:
        return make_app(VtexFake(app_key="test-app-key", app_token="test-app-token"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"account_name": "teststore", "base_url": url, "app_key": "test-app-key",
                "app_token": "test-app-token"}
