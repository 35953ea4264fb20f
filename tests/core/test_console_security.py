"""The operator console's security, proved at the HTTP level (each test was a finding of
the console's security review of 2026-12-07): sessions end at logout, cookies carry no
oracle for the passwords, failed logins are limited per account, bad numbers are a 400,
every message link opens, and the login returns to the link it interrupted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

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
from pydantic import ValidationError

from crossdock.config import ConsoleConfig, LoadedConfig
from crossdock.console import ConsoleState
from crossdock.console.app import LOGIN_FAILURES_PER_MINUTE
from crossdock.console.auth import COOKIE, Auth
from crossdock.outbox import open_outbox
from crossdock.outbox.base import Outbox
from crossdock.pipeline import Pipeline


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return console_config(tmp_path)


@pytest.fixture
def outbox(loaded: LoadedConfig) -> Iterator[Outbox]:
    box = open_outbox(loaded.outbox_url)
    yield box
    box.close()


@pytest.fixture
def url(loaded: LoadedConfig, outbox: Outbox) -> Iterator[str]:
    Pipeline(loaded, outbox).accept([
        {"type": "track", "event": "Clicked", "userId": "u-1", "messageId": "msg-1"},
        # a messageId with a slash: any id up to 100 characters is accepted by the collector
        {"type": "track", "event": "Slashed", "userId": "u-2", "messageId": "orders/1001"},
        {"type": "track", "event": "Dotted", "userId": "u-3", "messageId": "../../dead-letters"}])
    items = outbox.lease("hook", 1000, 60, "test#1")
    for item in items:
        outbox.dead(item.id, "HTTP 500", "test#1")
    with console_server(loaded) as url:
        yield url


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- sessions: rows of the outbox, ended by logout, expiry, idleness, a changed credential --

def test_a_cookie_is_dead_after_logout(url: str) -> None:
    """Sessions were stateless and logout only asked the browser to drop the cookie: a
    copied (stolen) cookie stayed an admin session for 12 h."""
    admin = logged_in(url, "ada", ADMIN_PASSWORD)
    stolen = admin.cookies[COOKIE]
    csrf = csrf_of(admin.get("/console/").text)
    assert admin.post("/console/logout", data={"csrf": csrf}).status_code == 303
    again = httpx.get(f"{url}/console/", cookies={COOKIE: stolen}, follow_redirects=False)
    assert again.status_code == 303, (
        f"the cookie of a logged-out session still opens the console "
        f"({again.status_code})")


def test_a_session_opens_every_console_on_the_outbox_and_the_row_holds_no_cookie(
        tmp_path: Path, url: str, outbox: Outbox) -> None:
    """A fleet shares sessions (two consoles on one outbox); the database keeps only the
    SHA-256 of the cookie, so reading it takes over no session."""
    admin = logged_in(url, "ada", ADMIN_PASSWORD)
    cookie = admin.cookies[COOKIE]
    with console_server(console_config(tmp_path)) as other:
        assert httpx.get(f"{other}/console/", cookies={COOKIE: cookie},
                         follow_redirects=False).status_code == 200
    with outbox.transaction() as tx:
        rows = tx.execute("SELECT id_hash, user_name, role FROM console_sessions").fetchall()
    assert [tuple(r) for r in rows] == [(hashlib.sha256(cookie.encode()).hexdigest(), "ada",
                                         "admin")]


@pytest.mark.parametrize("change", ["password", "role"])
def test_a_changed_credential_or_role_ends_the_session(tmp_path: Path, url: str,
                                                       change: str) -> None:
    admin = logged_in(url, "ada", ADMIN_PASSWORD)
    ada = ({"password": "another-password-2", "role": "admin"} if change == "password"
           else {"password": ADMIN_PASSWORD, "role": "read-only"})
    changed = console_config(tmp_path, console={"token": TOKEN, "users": {"ada": ada}})
    with console_server(changed) as other:
        assert httpx.get(f"{other}/console/", cookies={COOKIE: admin.cookies[COOKIE]},
                         follow_redirects=False).status_code == 303
    # ended for good: the first config does not bring it back
    assert admin.get("/console/", follow_redirects=False).status_code == 303


def test_a_session_ends_when_expired_or_idle_and_old_rows_are_forgotten(
        loaded: LoadedConfig, outbox: Outbox) -> None:
    config = loaded.config.console.model_copy(update={"session": 3600.0, "idle": 600.0})
    auth = Auth(config, outbox)
    _, cookie = auth.issue("ada", "admin", now=1000.0)
    assert auth.read(cookie, now=1500.0) is not None       # used: last seen moves to 1500
    assert auth.read(cookie, now=2050.0) is not None       # 550 s idle: still open
    assert auth.read(cookie, now=2700.0) is None           # 650 s idle: ended
    _, lasting = auth.issue("vic", "read-only", now=10_000.0)
    for at in range(10_000, 13_600, 500):
        assert auth.read(lasting, now=float(at)) is not None
    assert auth.read(lasting, now=13_600.0) is None        # expired, however busy
    _, stale = auth.issue("vic", "read-only", now=20_000.0)
    auth.issue("ada", "admin", now=30_000.0)               # a login forgets the dead rows
    with outbox.transaction() as tx:
        assert tx.execute("SELECT COUNT(*) FROM console_sessions").fetchone()[0] == 1
    assert auth.read(stale, now=30_001.0) is None


def test_an_open_live_stream_ends_with_its_session(loaded: LoadedConfig) -> None:
    state = ConsoleState(loaded, open_outbox(loaded.outbox_url), session_check_every=0.2)
    with console_server(loaded, state) as url:
        admin = logged_in(url, "ada", ADMIN_PASSWORD)
        csrf = csrf_of(admin.get("/console/").text)
        lines: list[str] = []
        opened = threading.Event()

        def read() -> None:
            with httpx.stream("GET", f"{url}/console/live/stream",
                              cookies={COOKIE: admin.cookies[COOKIE]}, timeout=30) as answer:
                opened.set()
                lines.extend(answer.iter_lines())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert opened.wait(10)
        assert admin.post("/console/logout", data={"csrf": csrf}).status_code == 303
        reader.join(20)
        assert not reader.is_alive(), "the stream outlived its session"
        assert "event: ended" in lines


# -- no key derived from the passwords ---------------------------------------------------

def test_a_session_cookie_is_no_offline_oracle_for_the_passwords(url: str) -> None:
    """The HMAC key was SHA-256 of the configured credentials, nothing secret and random
    (now nothing is signed: the cookie is a random id). A read-only user knows their own
    password and the user names/roles, so one cookie let them test guesses of the token and
    the admin's password offline at hash speed (the 10-a-minute login limit never applied),
    then sign an admin session. The word list stands in for a dictionary holding the weak
    passwords."""
    vic = logged_in(url, "vic", VIEWER_PASSWORD)
    body, _, signature = vic.cookies[COOKIE].rpartition(".")
    words = ["password", "letmein", "console-token", TOKEN, "admin-password", ADMIN_PASSWORD]
    key = None
    for token in words:
        for ada in words:
            material = [f"token:{token}", f"user:ada:admin:{ada}",
                        f"user:vic:read-only:{VIEWER_PASSWORD}"]
            guess = hashlib.sha256(("crossdock console session v1\0" + "\0".join(material))
                                   .encode()).digest()
            if _b64(hmac.new(guess, body.encode(), hashlib.sha256).digest()) == signature:
                key = guess
    assert key is None, "one read-only cookie confirmed the guessed credentials"


def test_a_read_only_user_cannot_forge_an_admin_session(url: str,
                                                                  outbox: Outbox) -> None:
    """The impact of with the key cracked (here: derived from the guesses that
    the previous test confirms), a forged admin cookie pauses a destination."""
    material = [f"token:{TOKEN}", f"user:ada:admin:{ADMIN_PASSWORD}",
                f"user:vic:read-only:{VIEWER_PASSWORD}"]
    key = hashlib.sha256(("crossdock console session v1\0" + "\0".join(material)).encode()
                         ).digest()

    def sign(text: str) -> str:
        return _b64(hmac.new(key, text.encode(), hashlib.sha256).digest())

    body = _b64(json.dumps({"u": "ada", "r": "admin", "s": "forged", "e": 4102444800}).encode())
    answer = httpx.post(f"{url}/console/destinations/hook/pause",
                        cookies={COOKIE: f"{body}.{sign(body)}"},
                        data={"csrf": sign("csrf:forged")}, follow_redirects=False)
    assert "hook" not in outbox.paused(), (
        f"a cookie signed with the password-derived key paused hook "
        f"({answer.status_code})")


def test_a_login_needs_the_login_forms_token(url: str) -> None:
    """Another site could post its own credentials to the login and so log the browser in to
    an account of its choosing: the login form carries a pre-session token."""
    bare = httpx.post(f"{url}/console/login", data={"name": "ada", "password": ADMIN_PASSWORD})
    assert bare.status_code == 403 and COOKIE not in bare.cookies
    assert "login form is out of date" in bare.text
    with httpx.Client(base_url=url) as client:
        client.get("/console/login")
        other = client.post("/console/login", data={
            "name": "ada", "password": ADMIN_PASSWORD, "login_csrf": "x" * 43})
        assert other.status_code == 403 and COOKIE not in other.cookies


# -- failed logins: limited per account too, X-Forwarded-For only from trusted proxies ----

def test_failed_logins_for_one_user_are_limited_whatever_the_address(url: str
                                                                               ) -> None:
    """Failures were counted per client address only, and uvicorn's default believes
    X-Forwarded-For from 127.0.0.1, so a client coming through a same-host proxy or tunnel
    named a fresh address for every guess. (This server believes the header: the limit per
    account holds anyway; tests/e2e/test_console_command.py shows the listeners do not.)"""
    statuses = []
    for i in range(LOGIN_FAILURES_PER_MINUTE + 5):
        statuses.append(post_login(url, {"name": "ada", "password": f"guess-{i}"},
                                   headers={"x-forwarded-for": f"203.0.113.{i}"}).status_code)
    assert 429 in statuses, f"{len(statuses)} wrong passwords for ada: {statuses}"


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ValidationError, match=r"'proxy\.local' is not an IP address or network"):
        ConsoleConfig(trusted_proxies=["10.0.0.0/8", "proxy.local"])
    assert ConsoleConfig().proxy_options() == {"proxy_headers": False}
    assert ConsoleConfig(trusted_proxies=["10.0.0.5"]).proxy_options() == {
        "proxy_headers": True, "forwarded_allow_ips": ["10.0.0.5"]}


# -- bad numbers: a 400 naming the field and the rule, never a 500 ----------------------

@pytest.mark.parametrize("path", [
    # str.isdigit() is true for "²" (and other digits int() refuses): ValueError -> 500
    "/console/dictionary?days=%C2%B2",
    "/console/dead-letters/dry-run?ids=%C2%B2",
    "/console/live/stream?after=%C2%B2",
    # an id SQLite cannot hold: OverflowError -> 500
    "/console/dead-letters/99999999999999999999999",
    "/console/dead-letters/dry-run?ids=99999999999999999999999",
])
def test_bad_numbers_are_a_400_naming_the_field(url: str, path: str) -> None:
    """dictionary.py:55-57, dead_letters.py:130-132, live.py:96 (isdigit then int), the
    {id:int} route and RowQuery ids (no bound) were each a 500."""
    viewer = logged_in(url, "vic", VIEWER_PASSWORD)
    answer = viewer.get(path)
    field = path.rsplit("?", 1)[-1].split("=")[0] if "?" in path else "id"
    assert answer.status_code == 400, f"{path} -> {answer.status_code}"
    assert f"{field}: a whole number from" in answer.text


def test_a_replay_with_a_bad_id_is_a_400(url: str) -> None:
    admin = logged_in(url, "ada", ADMIN_PASSWORD)
    csrf = csrf_of(admin.get("/console/dead-letters").text)
    answer = admin.post("/console/dead-letters/replay", data={"csrf": csrf, "ids": "\u00b2"})
    assert answer.status_code == 400, f"replay ids=² -> {answer.status_code}"
    assert "ids: a whole number from 0 to" in answer.text


# -- a message whose id has a slash (or is a path) opens ----------------------------------

@pytest.mark.parametrize("message_id", ["orders/1001", "../../dead-letters"])
def test_every_live_message_link_opens(url: str, message_id: str) -> None:
    """The link named the id as a path segment (`urlencode` leaves "/" as is), so a slash was
    a 404 and "../../x" pointed the operator's htmx GET at another console path: the id is a
    query parameter now."""
    viewer = logged_in(url, "vic", VIEWER_PASSWORD)
    page = viewer.get("/console/live").text
    link = "/console/live/message?id=" + quote(message_id, safe="/")
    assert f'href="{link}"' in page  # what the page links to
    answer = viewer.get(link)
    assert answer.status_code == 200, f"{link} -> {answer.status_code}"
    assert f"Message {message_id}" in answer.text


# -- the login returns to the link with its query ------------------------------------

def test_login_returns_to_the_link_with_its_query(url: str) -> None:
    """app.py:363 (_to_login): next= is request.url.path only, so a shared link to a filtered
    dead-letter list or a mapping-tester result lands unfiltered after the login."""
    target = "/console/dead-letters?destination=hook"
    answer = httpx.get(url + target, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=" + quote(target, safe="/"), (
        f"{answer.headers['location']}")
    form = httpx.get(url + answer.headers["location"]).text
    assert f'value="{target}"' in form
    done = post_login(url, {"name": "ada", "password": ADMIN_PASSWORD, "next": target})
    assert done.headers["location"] == target
    for elsewhere in ("/console/../metrics", "/console/\\elsewhere.example"):
        refused = post_login(url, {"name": "ada", "password": ADMIN_PASSWORD,
                                   "next": elsewhere})
        assert refused.headers["location"] == "/console/"


def test_the_dictionary_page_reads_without_migrating(tmp_path: Path) -> None:
    """A GET only reads: an outbox no profile store opened yet shows an empty dictionary and
    still has no dictionary tables afterwards."""
    loaded = console_config(tmp_path)
    with console_server(loaded) as url:
        viewer = logged_in(url, "vic", VIEWER_PASSWORD)
        answer = viewer.get("/console/dictionary")
        assert answer.status_code == 200
    box = open_outbox(loaded.outbox_url)
    try:
        with box.transaction() as tx:
            tables = {row[0] for row in tx.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    finally:
        box.close()
    assert "console_sessions" in tables
    assert not tables & {"profile_dictionary", "profile_dictionary_rejections"}
