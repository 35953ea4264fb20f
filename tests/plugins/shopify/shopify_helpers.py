"""Helpers of the Shopify tests: the store's token, routed items, and a harness that runs
messages through the whole pipeline (accept -> profile -> route -> SQLite outbox -> deliver)
to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.shopify import ShopifyDestination, ShopifySettings
from crossdock.plugins.shopify.fake import ShopifyFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness

TOKEN = "shpat_test_1"
SHOP = "test-store"


def destination(server: RunningServer | None = None, *, token: str = TOKEN,
                mapping: dict[str, Any] | None = None, **settings: Any) -> ShopifyDestination:
    if server is not None:
        settings.setdefault("base_url", server.url)
    settings.setdefault("shop", SHOP)
    config = ShopifySettings(access_token=token, **settings)  # type: ignore[arg-type]
    shipped = ShopifyDestination.default_mapping()
    if mapping is not None:
        shipped = {**shipped, "options": {**shipped["options"], **mapping}}
    return ShopifyDestination(config, shipped)


def item(n: int = 1, **fields: Any) -> OutboxItem:
    """A routed identify of person n (ada{n}@example.com), email consent granted, SMS not."""
    payload: dict[str, Any] = {
        "type": "identify", "userId": f"u{n}",
        "traits": {"email": f"ada{n}@example.com", "firstName": "Ada", "lastName": "Lovelace"},
        "consent": {"email": True, "sms": False}, "timestamp": "2024-05-01T12:00:00+00:00",
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload))


def audience(n: int, event: str, name: str = "high_value", **fields: Any) -> OutboxItem:
    return item(n, type="track", event=event, properties={"audience": name}, **fields)


@dataclass
class Harness(FakeHarness[ShopifyFake]):
    plugin = "shopify"

    def base_settings(self) -> dict[str, Any]:
        return {"shop": SHOP, "base_url": self.server.url, "access_token": TOKEN}

    def customer(self, email: str) -> dict[str, Any]:
        found = self.server.call(lambda: self.fake.by_email(email))
        assert found is not None, email
        return dict(found)
