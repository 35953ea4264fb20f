"""Helpers of the MailUp tests: settings for the fake, routed items, and a harness that runs
messages through the whole pipeline (SQLite outbox -> the real engine's delivery, its tokens
included) to the contract fake on the tests' clock. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.destination import OutboxItem
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
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload
from crossdock.testing.pipeline import FakeOnClock

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
class Harness(FakeOnClock[MailUpFake]):
    plugin = "mailup"
    options = OPTIONS

    def base_settings(self, **more: Any) -> dict[str, Any]:
        return settings(self.server.url, **more)
