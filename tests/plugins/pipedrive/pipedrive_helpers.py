"""Helpers of the Pipedrive tests: the company's token and custom fields, routed items, and a
harness that runs messages through the whole pipeline (accept -> profile -> route -> SQLite
outbox -> deliver) to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
from crossdock.plugins.pipedrive import PipedriveDestination, PipedriveSettings
from crossdock.plugins.pipedrive.fake import PipedriveFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeHarness

TOKEN = "pipedrive-token-1"
#: the fake company's custom fields: text, number, monetary, date
TEXT, NUMBER, MONEY, DATE = "a" * 40, "b" * 40, "c" * 40, "d" * 40


def destination(server: RunningServer, *, token: str = TOKEN,
                mapping: dict[str, Any] | None = None, **settings: Any
                ) -> PipedriveDestination:
    """The plugin pointed at the fake, with the shipped mapping (`mapping` merged over its
    options)."""
    config = PipedriveSettings(base_url=server.url, api_token=token,  # type: ignore[arg-type]
                               **settings)
    shipped = PipedriveDestination.default_mapping()
    if mapping is not None:
        shipped = {**shipped, "options": {**shipped["options"], **mapping}}
    return PipedriveDestination(config, shipped)


def item(n: int = 1, kind: str = "identify", *, attempts: int = 1, **fields: Any
         ) -> OutboxItem:
    """A routed item of person n (ada{n}@example.com), email consent granted, on its
    `attempts`th attempt."""
    payload: dict[str, Any] = {
        "type": kind, "event": "Demo Requested" if kind == "track" else None,
        "userId": f"u{n}", "timestamp": "2024-05-01T12:30:00+00:00",
        "traits": {"email": f"ada{n}@example.com", "firstName": "Ada", "lastName": "Lovelace"},
        "consent": {"email": True},
    }
    payload.update(fields)
    return outbox_item(routed_payload(n, **payload), attempts=attempts)


def person(fake: PipedriveFake, email: str = "ada1@example.com", name: str = "Ada L",
           **fields: Any) -> int:
    """A person already in Pipedrive (searchable at once); their id."""
    pid = max(fake.persons, default=0) + 1
    fake.persons[pid] = {"id": pid, "name": name, "custom_fields": {},
                         "emails": [{"value": email, "primary": True, "label": "work"}],
                         "phones": [], "marketing_status": "no_consent", **fields}
    return pid


@dataclass
class Harness(FakeHarness[PipedriveFake]):
    plugin = "pipedrive"

    def base_settings(self) -> dict[str, Any]:
        return {"base_url": self.server.url, "api_token": TOKEN}
