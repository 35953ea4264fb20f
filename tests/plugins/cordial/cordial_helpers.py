"""Helpers of the Cordial tests: the account's key, routed items, and a harness that runs
messages through the whole pipeline (accept -> profile -> route -> SQLite outbox -> deliver)
to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.cordial import CordialDestination, CordialSettings
from crossdock.plugins.cordial.fake import PREFIX, CordialFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness

API_KEY = "cordial-key-1"


def destination(server: RunningServer, *, key: str = API_KEY,
                mapping: dict[str, Any] | None = None, **settings: Any) -> CordialDestination:
    """The plugin pointed at the fake, with the shipped mapping (or `mapping` merged over its
    options)."""
    config = CordialSettings(base_url=server.url + PREFIX, api_key=key,  # type: ignore[arg-type]
                             **settings)
    shipped = CordialDestination.default_mapping()
    if mapping is not None:
        shipped = {**shipped, "options": {**shipped["options"], **mapping}}
    return CordialDestination(config, shipped)


def item(n: int = 1, kind: str = "identify", **fields: Any) -> OutboxItem:
    """A routed item of person n (ada{n}@example.com), consent granted for email only."""
    payload: dict[str, Any] = {
        "type": kind, "event": "Order Shipped" if kind == "track" else None,
        "userId": f"u{n}", "traits": {"email": f"ada{n}@example.com", "firstName": "Ada"},
        "consent": {"email": True, "sms": False}, "timestamp": "2024-05-01T12:00:00+00:00",
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload))


@dataclass
class Harness(FakeHarness[CordialFake]):
    plugin = "cordial"

    def base_settings(self) -> dict[str, Any]:
        return {"base_url": self.server.url + PREFIX, "api_key": API_KEY}

    def contact(self, email: str) -> dict[str, Any]:
        return dict(self.server.call(lambda: self.fake.contacts[email]))
