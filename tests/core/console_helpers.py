"""The console tests' harness: the console app of a config under uvicorn on 127.0.0.1 (a
thread), on a real SQLite outbox; logging in as a user of the config."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from collector_helpers import serve_app

from crossdock.config import LoadedConfig
from crossdock.console import ConsoleState, make_console_app
from crossdock.loader import parse_config
from crossdock.outbox import open_outbox
from crossdock.plugin_manager import destination_types

TOKEN = "console-token-0123456789"
ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-1"
#: the webhook's signing secret: no page may show it
WEBHOOK_SECRET = "whsec_Y29uc29sZS10ZXN0LXNpZ25pbmctc2VjcmV0"
HEADER_SECRET = "hdr-secret-value-42"


def console_config(tmp_path: Path, outbox_url: str | None = None, **extra: Any
                   ) -> LoadedConfig:
    raw: dict[str, Any] = {
        "outbox": {"url": outbox_url or f"sqlite:///{tmp_path / 'crossdock.db'}"},
        "collector": {"enabled": False},
        "console": {"token": TOKEN, "users": {
            "ada": {"password": ADMIN_PASSWORD, "role": "admin"},
            "vic": {"password": VIEWER_PASSWORD, "role": "read-only"}}},
        "destinations": {"hook": {"plugin": "webhook", "settings": {
            "url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET,
            "headers": {"x-api-key": HEADER_SECRET}},
            "delivery": {"allow_private_network": True}}},
    }
    raw.update(extra)
    return parse_config(raw, base_dir=tmp_path, env={}, types=destination_types())


@contextmanager
def console_server(loaded: LoadedConfig, state: ConsoleState | None = None
                   ) -> Iterator[str]:
    """The console of `loaded` (or of `state`, whose outbox it closes) served on a free
    port; yields its base URL."""
    state = state or ConsoleState(loaded, open_outbox(loaded.outbox_url))
    try:
        with serve_app(make_console_app(state)) as url:
            yield url
    finally:
        state.stop()
        state.outbox.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login_token(client: httpx.Client) -> str:
    """The login form's pre-session CSRF token (its cookie now held by `client`)."""
    found = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/console/login").text)
    assert found, "no login_csrf field on the login page"
    return found.group(1)


def post_login(url: str, data: dict[str, str], headers: dict[str, str] | None = None
               ) -> httpx.Response:
    """A login POST as the login form sends it (with its token), from a fresh client."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return client.post("/console/login", data={**data, "login_csrf": login_token(client)},
                           headers=headers)


def logged_in(url: str, name: str, password: str) -> httpx.Client:
    """A client holding a session of `name`."""
    client = httpx.Client(base_url=url, timeout=10)
    answer = client.post("/console/login", data={
        "name": name, "password": password, "login_csrf": login_token(client)})
    assert answer.status_code == 303, answer.text
    return client
