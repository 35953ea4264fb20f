"""The console's sessions, CSRF tokens and roles over HTTP (crossdock.console.auth/app)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from console_helpers import (
    ADMIN_PASSWORD,
    TOKEN,
    VIEWER_PASSWORD,
    console_config,
    console_server,
    csrf_of,
    logged_in,
    post_login,
)

from crossdock.console.auth import COOKIE


@pytest.fixture
def url(tmp_path: Path):
    with console_server(console_config(tmp_path)) as url:
        yield url


def test_a_page_without_a_session_goes_to_the_login(url: str) -> None:
    answer = httpx.get(f"{url}/console/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/"
    htmx = httpx.get(f"{url}/console/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["hx-redirect"].startswith("/console/login")


def test_login_sets_an_httponly_strict_cookie(url: str) -> None:
    answer = post_login(url, {"name": "ada", "password": ADMIN_PASSWORD, "next": "/console/"})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    page = httpx.get(f"{url}/console/", cookies={COOKIE: answer.cookies[COOKIE]})
    assert page.status_code == 200
    assert "ada" in page.text and "(admin)" in page.text


def test_a_wrong_password_or_forged_cookie_is_refused(url: str) -> None:
    wrong = post_login(url, {"name": "ada", "password": "nope"})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    good = post_login(url, {"name": "vic", "password": VIEWER_PASSWORD})
    value = good.cookies[COOKIE]
    # The cookie is a random session id: a changed one (a guess) opens nothing.
    assert len(value) >= 40
    forged = value[:-1] + ("A" if value[-1] != "A" else "B")
    answer = httpx.get(f"{url}/console/", cookies={COOKIE: forged}, follow_redirects=False)
    assert answer.status_code == 303
    assert httpx.get(f"{url}/console/", cookies={COOKIE: value},
                     follow_redirects=False).status_code == 200


def test_the_token_logs_in_as_admin(url: str) -> None:
    client = logged_in(url, "", TOKEN)
    assert "token" in client.get("/console/").text


def test_login_goes_only_to_console_pages(url: str) -> None:
    answer = post_login(url, {"name": "ada", "password": ADMIN_PASSWORD,
                              "next": "https://elsewhere.example/"})
    assert answer.headers["location"] == "/console/"


def test_logout_needs_the_csrf_token(url: str) -> None:
    client = logged_in(url, "ada", ADMIN_PASSWORD)
    refused = client.post("/console/logout", data={"csrf": "x"})
    assert refused.status_code == 403
    assert client.get("/console/").status_code == 200
    token = csrf_of(client.get("/console/").text)
    assert client.post("/console/logout", data={"csrf": token}).status_code == 303
    assert client.get("/console/").status_code == 303


def test_too_many_failed_logins_wait(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "crossdock.console.actions")
    for _ in range(10):
        post_login(url, {"name": "ada", "password": "wrong"})
    answer = post_login(url, {"name": "ada", "password": ADMIN_PASSWORD})
    assert answer.status_code == 429
    assert any("failed login for 'ada'" in r.getMessage() for r in caplog.records)


def test_every_answer_carries_the_security_headers(url: str) -> None:
    answer = httpx.get(f"{url}/console/login")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    js = httpx.get(f"{url}/console/static/htmx.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{url}/console/static/..%2Fapp.py").status_code == 404


def test_short_credentials_are_refused_by_name(tmp_path: Path) -> None:
    from crossdock.errors import ConfigError
    from crossdock.loader import parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config({"console": {"token": "short", "users": {
            "ada": {"password": "tiny", "role": "admin"},
            "bob": {"password": "long-enough-password", "role": "owner"}}}},
            base_dir=tmp_path, env={})
    text = "\n".join(refused.value.problems)
    assert "console.token: must be at least 16 characters" in text
    assert "console.users.ada.password: must be at least 12 characters" in text
    assert "console.users.bob.role: Input should be 'admin' or 'read-only'" in text


def test_without_a_console_config_the_ops_listener_has_no_console(tmp_path: Path) -> None:
    from collector_helpers import serve_app
    from prometheus_client import CollectorRegistry

    from crossdock.ops import OpsApp, Readiness
    from crossdock.outbox import open_outbox

    loaded = console_config(tmp_path, console={})
    assert not loaded.config.console.enabled
    outbox = open_outbox(loaded.outbox_url)
    try:
        ops = OpsApp(CollectorRegistry(), Readiness(outbox, list), None)
        with serve_app(ops) as url:
            assert httpx.get(f"{url}/console/").status_code == 404
            assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        outbox.close()
