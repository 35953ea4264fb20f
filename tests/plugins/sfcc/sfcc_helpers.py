"""Helpers of the SFCC tests: settings for the fake, routed items, and a harness that runs
messages through the whole pipeline (accept -> route -> SQLite outbox -> deliver) to the
contract fake on the tests' clock. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.sfcc import SfccDestination, SfccSettings
from crossdock.plugins.sfcc.fake import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_LIST,
    TOKEN_PATH,
    SfccFake,
)
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeOnClock

OPTIONS: dict[str, Any] = {
    "attributes": {"email": "email", "firstName": "first_name", "lastName": "last_name",
                   "phone": "phone_mobile", "birthday": "birthday", "gender": "gender",
                   "tier": "c_loyaltyTier", "lifetime_value": "c_lifetimeValue"},
}


def settings(url: str, **more: Any) -> dict[str, Any]:
    return {"base_url": url, "token_url": url + TOKEN_PATH, "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET, "customer_list": DEFAULT_LIST, **more}


def destination(server: RunningServer, *, options: dict[str, Any] | None = None,
                **more: Any) -> SfccDestination:
    """The plugin pointed at the fake, with the shipped mapping and OPTIONS (and `options`)
    over its options."""
    config = SfccSettings.model_validate(settings(server.url, **more))
    shipped = SfccDestination.default_mapping()
    shipped = {**shipped, "options": {**shipped["options"], **OPTIONS, **(options or {})}}
    return SfccDestination(config, shipped)


def item(n: int = 1, **fields: Any) -> OutboxItem:
    """A routed identify of person n (u{n}, ada{n}@example.com)."""
    payload: dict[str, Any] = {"type": "identify", "userId": f"u{n}",
                               "traits": {"email": f"ada{n}@example.com", "firstName": "Ada"}}
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload), n)


def identify(n: int, **traits: Any) -> dict[str, Any]:
    return routed_payload(n, type="identify", userId=f"u{n}",
                          traits={"email": f"ada{n}@example.com", **traits})


@dataclass
class Harness(FakeOnClock[SfccFake]):
    plugin = "sfcc"
    options = OPTIONS

    def base_settings(self, **more: Any) -> dict[str, Any]:
        return settings(self.server.url, **more)
