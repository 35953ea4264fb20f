"""The Pipedrive destination passes the standard conformance suite (crossdock.testing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.pipedrive import PipedriveDestination
from crossdock.plugins.pipedrive.fake import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH,
    OAUTH_TOKEN_PATH,
    PipedriveFake,
    make_app,
)
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

ADA = {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"}


class TestPipedriveConformance(DestinationConformance):
    destination = PipedriveDestination
    payloads = [
        routed_payload(1, type="identify", traits=ADA),
        routed_payload(2, event="Demo Requested", traits={"email": "bo@example.com"},
                       properties={"seats": 3}),
    ]
    rejected_payload = routed_payload(3, event="Clicked", traits={})

    def fake_app(self) -> web.Application:
        return make_app(PipedriveFake(api_token="test-token"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"base_url": url, "api_token": "test-token"}


class TestPipedriveOAuthConformance(TestPipedriveConformance):
    """The same with `auth: oauth`: the token endpoint on the fake, the API host its
    api_domain."""

    def fake_app(self) -> web.Application:
        return make_app(PipedriveFake(api_token="unused-token"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"auth": "oauth", "token_url": url + OAUTH_TOKEN_PATH,
                "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                "refresh_token": DEFAULT_REFRESH}
