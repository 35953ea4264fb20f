"""Helpers of the Amplitude tests: the project's key, routed items, and a harness that runs
messages through the whole pipeline (accept -> profile -> route -> SQLite outbox -> deliver)
to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx

from crossdock.destination import OutboxItem, PlannedRequest
from crossdock.plugins.amplitude import AmplitudeDestination, AmplitudeSettings
from crossdock.plugins.amplitude.fake import AmplitudeFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness

API_KEY = "amplitude-key-1"


def destination(server: RunningServer | None = None, *, key: str = API_KEY,
                options: dict[str, Any] | None = None, **settings: Any
                ) -> AmplitudeDestination:
    """The plugin pointed at the fake (or at Amplitude's hosts), with the shipped mapping
    (or `options` merged over its options)."""
    base = {"base_url": server.url} if server is not None else {}
    config = AmplitudeSettings.model_validate({"api_key": key, **base, **settings})
    shipped = AmplitudeDestination.default_mapping()
    if options is not None:
        shipped = {**shipped, "options": {**shipped["options"], **options}}
    return AmplitudeDestination(config, shipped)


def item(n: int = 1, kind: str = "track", **fields: Any) -> OutboxItem:
    """A routed item of person n (user-000n, device dev-000n)."""
    payload: dict[str, Any] = {
        "type": kind, "event": "Order Completed" if kind == "track" else None,
        "userId": f"user-{n:04d}", "anonymousId": f"dev-{n:04d}",
        "timestamp": "2024-05-01T12:00:00.250+00:00",
    }
    if kind in ("page", "screen"):
        payload["event"] = "Home"
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload))


def events_of(planned: PlannedRequest) -> list[dict[str, Any]]:
    """The events of an HTTP V2 request."""
    body: dict[str, Any] = json.loads(planned.request.content)
    return list(body["events"])


def identifications_of(request: httpx.Request) -> list[dict[str, Any]]:
    """The identifications of an Identify API request (a form)."""
    form = parse_qs(request.content.decode())
    parsed: list[dict[str, Any]] = json.loads(form["identification"][0])
    return parsed


@dataclass
class Harness(FakeHarness[AmplitudeFake]):
    plugin = "amplitude"

    def base_settings(self) -> dict[str, Any]:
        return {"base_url": self.server.url, "api_key": API_KEY}

    def events(self) -> list[dict[str, Any]]:
        return list(self.server.call(lambda: list(self.fake.events)))

    def users(self) -> dict[str, dict[str, Any]]:
        return dict(self.server.call(lambda: dict(self.fake.users)))
