"""The Twilio destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.twilio import TwilioDestination
from crossdock.plugins.twilio.fake import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    TwilioFake,
    make_app,
)
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

OPTED_IN = {"phone": "+19148440001"}


class TestTwilioConformance(DestinationConformance):
    destination = TwilioDestination
    payloads = [
        routed_payload(1, event="Order Shipped", traits=OPTED_IN, consent={"sms": True},
                       rendered={"body": "Your order shipped"}),
        routed_payload(2, event="Order Delivered", traits=OPTED_IN, consent={"sms": True},
                       rendered={"body": "Delivered!"}),
    ]
    rejected_payload = routed_payload(3, event="Order Shipped", traits=OPTED_IN,
                                      consent={"sms": False}, rendered={"body": "x"})

    def fake_app(self) -> web.Application:
        return make_app(TwilioFake())

    def settings(self, url: str) -> dict[str, Any]:
        return {"base_url": url, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                "from_number": FROM_NUMBER}
