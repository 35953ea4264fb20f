"""The MailUp destination passes the standard conformance suite (crossdock.testing), its token
endpoint included: the fake answers the token endpoint and the console routes on one server."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from mailup_helpers import OPTIONS, settings

from crossdock.plugins.mailup import MailUpDestination
from crossdock.plugins.mailup.fake import make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

ADA = {"email": "ada@example.com", "firstName": "Ada", "phone": "+39 347 123 4567"}


class TestMailUpConformance(DestinationConformance):
    destination = MailUpDestination
    payloads = [
        routed_payload(1, type="identify", traits=ADA, consent={"email": True}),
        routed_payload(2, type="identify", traits={"email": "bo@example.com", "plan": "pro"},
                       consent={"email": True}),
        routed_payload(3, type="identify", traits={"email": "cy@example.com"},
                       consent={"email": False}),
    ]
    rejected_payload = routed_payload(4, type="identify", traits={}, consent={"email": True})

    def fake_app(self) -> web.Application:
        return make_app()

    def settings(self, url: str) -> dict[str, Any]:
        return settings(url)

    def mapping(self) -> dict[str, Any]:
        return {"options": OPTIONS}
