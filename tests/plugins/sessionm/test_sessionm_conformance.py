"""The SessionM destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.sessionm import SessionMDestination
from crossdock.plugins.sessionm.fake import SessionMFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestSessionMConformance(DestinationConformance):
    destination = SessionMDestination
    payloads = [
        routed_payload(1, type="identify", traits={"first_name": "Ada", "plan": "pro"},
                       identities={"email": "ada@example.com"}),
        routed_payload(2, event="Order Completed", properties={"total": "42.5"}),
    ]
    rejected_payload = routed_payload(3, event="Order Completed", profileId=None)

    def fake_app(self) -> web.Application:
        return make_app(fake=SessionMFake(defined_events={"Order Completed"}))

    def settings(self, url: str) -> dict[str, Any]:
        return {"host": url, "api_key": "test-key", "api_secret": "test-secret"}
