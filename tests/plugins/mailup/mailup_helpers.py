"""Helpers of the MailUp tests: settings for the fake, routed items, and a harness that runs
messages through the whole pipeline (SQLite outbox -> the real engine's delivery, its tokens
included) to the contract fake on the tests' clock. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossdock.delivery import DeliveryReport, deliver_once
from crossdock.destination import OutboxItem
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.mailup import MailUpDestination, MailUpSettings
from crossdock.plugins.mailup.fake import (
    CONSOLE,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    TOKEN_PATH,
    MailUpFake,
)
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload

OPTIONS: dict[str, Any] = {"fields": {"firstName": 1, "lastName": 2, "plan": 13},
                           "user_id_field": 12}


def settings(url: str, **more: Any) -> dict[str, Any]:
    """Settings for the fake at `url`: the password grant unless `more` says otherwise."""
    out: dict[str, Any] = {
        "base_url": url + CONSOLE, "token_url": url + TOKEN_PATH,
        "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
        "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "list_id": 1}
    if "refresh_token" in more:
        del out["username"], out["password"]
    out.update(more)
    return out


def destination(server: RunningServer, *, options: dict[str, Any] | None = None,
                **more: Any) -> MailUpDestination:
    """The plugin pointed at the fake, with the shipped mapping and OPTIONS (and `options`)
    over its options."""
    config = MailUpSettings.model_validate(settings(server.url, **more))
    shipped = MailUpDestination.default_mapping()
    shipped = {**shipped, "options": {**shipped["options"], **OPTIONS, **(options or {})}}
    return MailUpDestination(config, shipped)


def payload(n: int, granted: bool | None = True, **fields: Any) -> dict[str, Any]:
    """An identify of person n (u{n}, ada{n}@example.com), the email consent `granted` (None:
    no consent read)."""
    out = routed_payload(n, type="identify", userId=f"u{n}",
                         traits={"email": f"ada{n}@example.com", "firstName": "Ada"})
    if granted is not None:
        out["consent"] = {"email": granted}
    out.update(fields)
    return out


def item(n: int = 1, granted: bool | None = True, **fields: Any) -> OutboxItem:
    return outbox_item(payload(n, granted, **fields), n)


@dataclass
class Harness:
    """Rows into a SQLite outbox and the real engine's delivery passes, on the tests' clock
    (the fake's too: token expiry is reckoned on it)."""

    tmp_path: Path
    server: RunningServer
    fake: MailUpFake
    clock: ManualClock
    delivery: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.outbox = SQLiteOutbox(self.tmp_path / "outbox.db")
        self.count = 0

    def loaded(self, **more: Any) -> Any:
        raw = {"destinations": {"mailup": {
            "plugin": "mailup", "settings": settings(self.server.url, **more),
            "mapping": {"options": OPTIONS},
            "delivery": {"allow_private_network": True, "backoff_base": 0.01,
                         "backoff_max": 0.02, **(self.delivery or {})}}}}
        return parse_config(raw, base_dir=self.tmp_path, env={})

    async def deliver(self, payloads: list[dict[str, Any]], **more: Any) -> DeliveryReport:
        rows = []
        for routed in payloads:
            self.count += 1
            rows.append(NewRow("mailup", f"m{self.count}", routed, routed.get("userId")))
        self.outbox.enqueue(rows, now=self.clock())
        return await deliver_once(self.loaded(**more), self.outbox, clock=self.clock)
