"""Helpers of the Attentive tests: the account's key and sign-up unit, routed items, and a
harness that runs messages through the whole pipeline (accept -> profile -> route -> SQLite
outbox -> deliver) to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.attentive import AttentiveDestination, AttentiveSettings
from crossdock.plugins.attentive.fake import DEFAULT_SOURCE, AttentiveFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness

API_KEY = "attentive-key-1"
SOURCE = DEFAULT_SOURCE
GRANTED = {"sms": True, "email": True}


def destination(server: RunningServer, *, key: str = API_KEY, source: str | None = SOURCE,
                mapping: dict[str, Any] | None = None, **settings: Any) -> AttentiveDestination:
    """The plugin pointed at the fake, with the shipped mapping (or `mapping` merged over its
    options)."""
    config = AttentiveSettings(base_url=server.url, api_key=key,  # type: ignore[arg-type]
                               sign_up_source_id=source, **settings)
    shipped = AttentiveDestination.default_mapping()
    if mapping is not None:
        shipped = {**shipped, "options": {**shipped["options"], **mapping}}
    return AttentiveDestination(config, shipped)


def item(n: int = 1, kind: str = "track", event: str | None = "Signed Up", **fields: Any
         ) -> OutboxItem:
    """A routed item of person n: Ada's email and phone, consent granted for both channels."""
    payload: dict[str, Any] = {
        "type": kind, "event": event if kind == "track" else None, "userId": f"u{n}",
        "traits": {"email": f"ada{n}@example.com", "phone": "+1 914 844 0001"},
        "consent": dict(GRANTED), "timestamp": "2024-05-01T12:00:00+00:00",
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload))


@dataclass
class Harness(FakeHarness[AttentiveFake]):
    plugin = "attentive"

    def base_settings(self) -> dict[str, Any]:
        return {"base_url": self.server.url, "api_key": API_KEY, "sign_up_source_id": SOURCE}

    def bodies(self, path: str) -> list[Any]:
        """Bodies of the requests the fake accepted on `path` (/v1/...), in order."""
        received = self.server.call(lambda: list(self.fake.received))
        return [r["body"] for r in received if r["path"] == path and r["status"] < 300]
