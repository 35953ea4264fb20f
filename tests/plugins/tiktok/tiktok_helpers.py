"""Helpers of the TikTok tests: the token and pixel, routed items, and a harness that runs
messages through the whole pipeline (accept -> profile -> route -> SQLite outbox -> deliver)
to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem, PlannedRequest
from crossdock.plugins.tiktok import TikTokDestination, TikTokSettings
from crossdock.plugins.tiktok.fake import PREFIX, TikTokFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness

TOKEN = "tiktok-token-1"
PIXEL = "CPIXEL123"


def destination(server: RunningServer | None = None, *, token: str = TOKEN,
                options: dict[str, Any] | None = None, **settings: Any) -> TikTokDestination:
    """The plugin pointed at the fake (or at TikTok), with the shipped mapping (or `options`
    merged over its options)."""
    base = {"base_url": server.url + PREFIX} if server is not None else {}
    config = TikTokSettings.model_validate({"access_token": token, "event_source_id": PIXEL,
                                            **base, **settings})
    shipped = TikTokDestination.default_mapping()
    if options is not None:
        shipped = {**shipped, "options": {**shipped["options"], **options}}
    return TikTokDestination(config, shipped)


def item(n: int = 1, **fields: Any) -> OutboxItem:
    """A routed Purchase of person n (user-n, ada{n}@example.com)."""
    payload: dict[str, Any] = {
        "event": "Purchase", "userId": f"user-{n}",
        "traits": {"email": f"  Ada{n}@Example.com "},
        "timestamp": "2024-05-01T12:00:00.750Z",
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload))


def events_of(planned: PlannedRequest) -> list[dict[str, Any]]:
    body: dict[str, Any] = json.loads(planned.request.content)
    return list(body["data"])


@dataclass
class Harness(FakeHarness[TikTokFake]):
    plugin = "tiktok"

    def base_settings(self) -> dict[str, Any]:
        return {"base_url": self.server.url + PREFIX, "access_token": TOKEN,
                "event_source_id": PIXEL}

    def events(self) -> list[dict[str, Any]]:
        return list(self.server.call(lambda: list(self.fake.events)))
