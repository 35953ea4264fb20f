"""Helpers of the Twilio tests: the account's credentials, routed items, and a harness that
runs messages through the whole pipeline (accept -> profile -> route -> SQLite outbox ->
deliver) to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.twilio import TwilioDestination, TwilioSettings
from crossdock.plugins.twilio.fake import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, TwilioFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness, PipelineRun

PHONE = "+19148440001"


def settings(server: RunningServer, **overrides: Any) -> dict[str, Any]:
    return {"base_url": server.url, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
            "from_number": FROM_NUMBER, **overrides}


def destination(server: RunningServer, *, mapping: dict[str, Any] | None = None,
                **overrides: Any) -> TwilioDestination:
    """The plugin pointed at the fake, with the shipped mapping (or `mapping` merged over its
    options)."""
    config = TwilioSettings.model_validate(
        {k: v for k, v in settings(server, **overrides).items() if v is not None})
    shipped = TwilioDestination.default_mapping()
    if mapping is not None:
        shipped = {**shipped, "options": {**shipped["options"], **mapping}}
    return TwilioDestination(config, shipped)


def item(n: int = 1, body: str | None = "Your order shipped", **fields: Any) -> OutboxItem:
    """A routed event of person n with a phone and the SMS consent granted."""
    payload: dict[str, Any] = {
        "type": "track", "event": "Order Shipped", "userId": f"u{n}",
        "traits": {"phone": PHONE}, "consent": {"sms": True},
        "rendered": {"body": body} if body is not None else {},
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload))


@dataclass
class Harness(FakeHarness[TwilioFake]):
    plugin = "twilio"

    def base_settings(self) -> dict[str, Any]:
        return settings(self.server)

    def config(self, *, events: list[str] | None = None, **keys: Any) -> dict[str, Any]:
        """`events`: the events the filter allows (every one when None)."""
        return super().config(filter={"events": {"allow": events or ["*"]}}, **keys)

    async def run_twice(self, messages: list[dict[str, Any]], **config: Any) -> PipelineRun:
        """`run`, then a second delivery a day later (retries due)."""
        return await self.run(messages, deliveries=2, **config)

    def messages(self) -> list[dict[str, Any]]:
        return list(self.server.call(lambda: list(self.fake.messages)))
