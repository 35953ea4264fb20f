"""Helpers of the Google Ads tests: settings for the fake, routed items (membership changes and
conversions), and a harness running the real engine on the tests' clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.google_ads import GoogleAdsDestination, GoogleAdsSettings
from crossdock.plugins.google_ads.fake import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_CONVERSION_ACTION,
    DEFAULT_CUSTOMER,
    DEFAULT_DEVELOPER_TOKEN,
    DEFAULT_MANAGER,
    DEFAULT_REFRESH_TOKEN,
    DEFAULT_USER_LIST,
    TOKEN_PATH,
    GoogleAdsFake,
)
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeOnClock

OPTIONS: dict[str, Any] = {"user_lists": {"high_value": DEFAULT_USER_LIST},
                           "conversion_actions": {"Order Completed":
                                                  DEFAULT_CONVERSION_ACTION},
                           "phone_region": "US"}
SECRETS = [DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, DEFAULT_DEVELOPER_TOKEN]


def settings(url: str, **more: Any) -> dict[str, Any]:
    return {"customer_id": DEFAULT_CUSTOMER, "login_customer_id": DEFAULT_MANAGER,
            "developer_token": DEFAULT_DEVELOPER_TOKEN, "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": DEFAULT_REFRESH_TOKEN,
            "base_url": url, "token_url": url + TOKEN_PATH, **more}


def destination(server: RunningServer, *, options: dict[str, Any] | None = None,
                **more: Any) -> GoogleAdsDestination:
    config = GoogleAdsSettings.model_validate(settings(server.url, **more))
    shipped = GoogleAdsDestination.default_mapping()
    shipped = {**shipped, "options": {**shipped["options"], **OPTIONS, **(options or {})}}
    return GoogleAdsDestination(config, shipped)


def membership(n: int, event: str = "audience_entered", audience: str = "high_value",
               **traits: Any) -> dict[str, Any]:
    """Person n entering (or leaving) an audience, as the audience engine routes it."""
    return routed_payload(n, type="track", event=event, userId=f"u{n}",
                          properties={"audience": audience},
                          traits={"email": f"Ada.{n}@Gmail.com", **traits})


def conversion(n: int, **properties: Any) -> dict[str, Any]:
    return routed_payload(n, type="track", event="Order Completed", userId=f"u{n}",
                          timestamp="2024-05-01T12:30:05+02:00",
                          properties={"gclid": f"Cj0gclid{n}", "value": 42.5,
                                      "currency": "eur", "order_id": f"o{n}", **properties})


def item(payload: dict[str, Any], n: int = 1) -> OutboxItem:
    return outbox_item(payload, n)


@dataclass
class Harness(FakeOnClock[GoogleAdsFake]):
    plugin = "google_ads"
    options = OPTIONS

    def base_settings(self, **more: Any) -> dict[str, Any]:
        return settings(self.server.url, **more)
