"""Helpers of the VTEX tests: the account's API key, routed items, and a harness that runs
messages through the whole pipeline (accept -> profile -> route -> SQLite outbox -> deliver)
to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.vtex import VtexDestination, VtexSettings
from crossdock.plugins.vtex.fake import VtexFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness

APP_KEY = "vtexappkey-teststore-KEY1"
APP_TOKEN = "token-1-secret"
ACCOUNT = "teststore"


def destination(server: RunningServer | None = None, *, key: str = APP_KEY,
                token: str = APP_TOKEN, mapping: dict[str, Any] | None = None,
                **settings: Any) -> VtexDestination:
    """The plugin pointed at the fake (or at VTEX's host without a server), with the shipped
    mapping (or `mapping` merged over its options)."""
    if server is not None:
        settings.setdefault("base_url", server.url)
    settings.setdefault("account_name", ACCOUNT)
    config = VtexSettings(app_key=key, app_token=token, **settings)  # type: ignore[arg-type]
    shipped = VtexDestination.default_mapping()
    if mapping is not None:
        shipped = {**shipped, "options": {**shipped["options"], **mapping}}
    return VtexDestination(config, shipped)


def item(n: int = 1, **fields: Any) -> OutboxItem:
    """A routed identify of person n (ada{n}@example.com), email consent granted."""
    payload: dict[str, Any] = {
        "type": "identify", "userId": f"u{n}",
        "traits": {"email": f"ada{n}@example.com", "firstName": "Ada", "lastName": "Lovelace"},
        "consent": {"email": True, "sms": False}, "timestamp": "2024-05-01T12:00:00+00:00",
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload))


@dataclass
class Harness(FakeHarness[VtexFake]):
    plugin = "vtex"

    def base_settings(self) -> dict[str, Any]:
        return {"account_name": ACCOUNT, "base_url": self.server.url, "app_key": APP_KEY,
                "app_token": APP_TOKEN}

    def document(self, email: str, entity: str = "CL") -> dict[str, Any]:
        return dict(self.server.call(lambda: self.fake.document(entity, email)))
