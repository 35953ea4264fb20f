"""`crossdock console` as a real process against a PostgreSQL outbox a fleet would share: it
shows what `crossdock send` queued, and a pause made in it holds a separate delivering
process (`crossdock deliver --once`) until it is resumed there."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from e2e_helpers import (
    Fake,
    crossdock,
    crossdock_in_process,
    start_crossdock,
    status_json,
    track,
    wait_for,
    webhook_destination,
    write_messages,
)

from crossdock.outbox.pg_schema import temporary_schema

PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "console-command-pw"


@pytest.fixture
def pg_outbox() -> Iterator[str]:
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}")
    with temporary_schema(PG_URL, "crossdock_e2e_console") as url:
        yield url


def _config(folder: Path, outbox: str, url: str, console: dict[str, object]) -> Path:
    path = folder / "crossdock.yaml"
    path.write_text(yaml.safe_dump({
        "outbox": {"url": outbox}, "collector": {"enabled": False}, "console": console,
        "destinations": {"hook": webhook_destination(url)}}, sort_keys=False))
    return path


def _login_token(client: httpx.Client) -> str:
    """The login form's pre-session CSRF token (its cookie now held by `client`)."""
    found = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/console/login").text)
    assert found, "no login_csrf field on the login page"
    return found.group(1)


@pytest.mark.postgres
def test_a_pause_in_the_console_holds_another_process(tmp_path: Path, pg_outbox: str,
                                                      webhook_fake: Fake) -> None:
    config = _config(tmp_path, pg_outbox, f"{webhook_fake.url}/in",
                     {"users": {"ada": {"password": PASSWORD, "role": "admin"}}})
    sent = crossdock("send", "-c", str(config), "--quiet", str(write_messages(
        tmp_path / "in.jsonl", [track("m1"), track("m2")])))
    assert sent.returncode == 0, sent.stderr
    log = tmp_path / "console.log"
    process = start_crossdock("console", "-c", str(config), "--port", "0", log=log)
    address = re.compile(r"crossdock console: (http://\S+)/console/")
    try:
        wait_for(lambda: process.poll() is None and address.search(log.read_text()) is not None,
                 "the console to listen", 60, log.read_text)
        found = address.search(log.read_text())
        assert found
        with httpx.Client(base_url=found.group(1), timeout=10) as client:
            assert client.get("/").headers.get("location") == "/console/"
            login = client.post("/console/login", data={
                "name": "ada", "password": PASSWORD, "login_csrf": _login_token(client)})
            assert login.status_code == 303
            overview = client.get("/console/").text
            assert re.search(r">hook</a>.*?<td class=\"num\">2</td>", overview, re.S)
            page = client.get("/console/destinations/hook").text
            token = re.search(r'name="csrf" value="([^"]+)"', page)
            assert token
            paused = client.post("/console/destinations/hook/pause",
                                 data={"csrf": token.group(1)})
            assert paused.status_code == 303

            held = crossdock("deliver", "--once", "-c", str(config), "--quiet")
            assert held.returncode == 0, held.stderr
            assert webhook_fake.count() == 0
            assert status_json(config)["hook"]["paused_by"] == "ada"

            client.post("/console/destinations/hook/resume", data={"csrf": token.group(1)})
            let_go = crossdock("deliver", "--once", "-c", str(config), "--quiet")
            assert let_go.returncode == 0, let_go.stderr
            assert webhook_fake.count() == 2
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-3000:]
    assert "console: ada (admin) POST /console/destinations/hook/pause -> 303" in log.read_text()


def test_without_a_token_or_users_it_says_so(tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'o.db'}", "http://127.0.0.1:9/in", {})
    ran = crossdock_in_process("console", "-c", str(config))
    assert ran.returncode == 1
    assert "console: no token and no users, so nobody could log in" in ran.stderr


@pytest.mark.parametrize(("trusted", "seen"), [([], "127.0.0.1"), (["127.0.0.1"], "203.0.113.7")])
def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
        tmp_path: Path, webhook_fake: Fake, trusted: list[str], seen: str) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default: without
    console.trusted_proxies the console's client is the connecting address."""
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", f"{webhook_fake.url}/in",
                     {"users": {"ada": {"password": PASSWORD, "role": "admin"}},
                      "trusted_proxies": trusted})
    log = tmp_path / "console.log"
    process = start_crossdock("console", "-c", str(config), "--port", "0", log=log)
    address = re.compile(r"crossdock console: (http://\S+)/console/")
    try:
        wait_for(lambda: process.poll() is None and address.search(log.read_text()) is not None,
                 "the console to listen", 60, log.read_text)
        found = address.search(log.read_text())
        assert found
        with httpx.Client(base_url=found.group(1), timeout=10) as client:
            wrong = client.post("/console/login", data={
                "name": "ada", "password": "wrong", "login_csrf": _login_token(client)},
                headers={"x-forwarded-for": "203.0.113.7"})
        assert wrong.status_code == 401
        wait_for(lambda: "failed login for 'ada'" in log.read_text(), "the failure's log line",
                 30, log.read_text)
        assert f"failed login for 'ada' from {seen}" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
