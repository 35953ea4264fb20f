"""Helpers of the SFMC tests: settings for the fake, routed items, and a harness that runs
messages through the whole pipeline (accept -> profile -> route -> SQLite outbox -> deliver)
to the contract fake on the tests' clock. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.sfmc import SfmcDestination, SfmcSettings
from crossdock.plugins.sfmc.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SfmcFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeOnClock

OPTIONS: dict[str, Any] = {
    "data_extension": "Crossdock_Contacts",
    "columns": {"email": "EmailAddress", "firstName": "FirstName", "plan": "Plan",
                "lifetime_value": "LifetimeValue"},
    "journeys": {"Order Completed": "Crossdock-Order-Completed"},
}


def settings(url: str, **more: Any) -> dict[str, Any]:
    return {"auth_base_uri": url, "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET, **more}


def destination(server: RunningServer, *, options: dict[str, Any] | None = None,
                **more: Any) -> SfmcDestination:
    """The plugin pointed at the fake, with the shipped mapping and OPTIONS (and `options`)
    over its options."""
    config = SfmcSettings.model_validate(settings(server.url, **more))
    shipped = SfmcDestination.default_mapping()
    shipped = {**shipped, "options": {**shipped["options"], **OPTIONS, **(options or {})}}
    return SfmcDestination(config, shipped)


def item(n: int = 1, kind: str = "identify", **fields: Any) -> OutboxItem:
    """A routed item of person n (u{n}, ada{n}@example.com)."""
    payload: dict[str, Any] = {
        "type": kind, "event": "Order Completed" if kind == "track" else None,
        "userId": f"u{n}", "traits": {"email": f"ada{n}@example.com", "firstName": "Ada"},
        "properties": {"price": 42, "currency": "EUR"} if kind == "track" else {},
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload), n)


@dataclass
class Harness(FakeOnClock[SfmcFake]):
    plugin = "sfmc"
    options = OPTIONS

    def base_settings(self, **more: Any) -> dict[str, Any]:
        return settings(self.server.url, **more)


def identify(n: int, **traits: Any) -> dict[str, Any]:
    return routed_payload(n, type="identify", userId=f"u{n}",
                          traits={"email": f"ada{n}@example.com", **traits})


def track(n: int, event: str = "Order Completed", **properties: Any) -> dict[str, Any]:
    return routed_payload(n, type="track", event=event, userId=f"u{n}",
                          properties=properties)
