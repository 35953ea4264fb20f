"""Helpers of the Twilio tests: the account's credentials, routed items, and a harness that
runs messages through the whole pipeline (accept -> profile -> route -> SQLite outbox ->
deliver) to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.twilio import TwilioDestination, TwilioSettings
from crossdock.plugins.twilio.fake import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, TwilioFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import PipelineRun, fake_destination_config, run_pipeline

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
class Harness:
    tmp_path: Path
    server: RunningServer
    fake: TwilioFake
    runs: int = 0

    def config(self, *, mapping: dict[str, Any] | None = None,
               events: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
        destination: dict[str, Any] = {"plugin": "twilio",
                                       "settings": settings(self.server, **overrides),
                                       "filter": {"events": {"allow": events or ["*"]}}}
        if mapping is not None:
            destination["mapping"] = mapping
        self.runs += 1
        return fake_destination_config(self.tmp_path / f"outbox-{self.runs}.db", "twilio",
                                       destination)

    async def run(self, messages: list[dict[str, Any]], **config: Any) -> PipelineRun:
        return await run_pipeline(self.config(**config), messages, base_dir=self.tmp_path)

    async def run_twice(self, messages: list[dict[str, Any]], **config: Any) -> PipelineRun:
        """`run`, then a second delivery a day later (retries due)."""
        return await run_pipeline(self.config(**config), messages, base_dir=self.tmp_path,
                                  deliveries=2)

    def messages(self) -> list[dict[str, Any]]:
        return list(self.server.call(lambda: list(self.fake.messages)))
