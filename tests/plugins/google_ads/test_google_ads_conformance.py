"""The Google Ads destination passes the standard conformance suite, its token endpoint
included: the fake answers Google's token route and the Ads API on one server."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google_ads_helpers import OPTIONS, conversion, membership, settings

from crossdock.plugins.google_ads import GoogleAdsDestination
from crossdock.plugins.google_ads.fake import make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload


class TestGoogleAdsConformance(DestinationConformance):
    destination = GoogleAdsDestination
    payloads = [membership(1), membership(2, phone="+1 650 555 1212"),
                membership(3, event="audience_exited"), conversion(4)]
    rejected_payload = routed_payload(5, event="Clicked")

    def fake_app(self) -> web.Application:
        return make_app()

    def settings(self, url: str) -> dict[str, Any]:
        return settings(url)

    def mapping(self) -> dict[str, Any]:
        return {"options": OPTIONS}
