"""OAuth2 access tokens fetched, cached, shared and refreshed by the engine
(crossdock.delivery.tokens) for a destination whose plugin declares a grant: through the real
engine, over loopback HTTP, to a token endpoint and an API that check what they get; the
fleet's shared token on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import psycopg
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, SecretStr

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.delivery.tokens import Tokens, read_token
from crossdock.destination import (
    ClientCredentials,
    Destination,
    JwtBearer,
    Manifest,
    OutboxItem,
    PlannedRequest,
    RefreshToken,
    TokenGrant,
    json_request,
)
from crossdock.loader import parse_config
from crossdock.oauth import JWT_BEARER_GRANT
from crossdock.outbox import open_outbox
from crossdock.outbox.base import NewRow, Outbox, StoredToken
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, serve
from crossdock.testing.outbox_file import read_only

CLIENT_ID = "client-7"
CLIENT_SECRET = "s3cret-client-value"
REFRESH = "refresh-token-0"


# -- a token endpoint and an API that check what they get ----------------------------------


@dataclass
class OAuthFake:
    """RFC 6749 token endpoint (client credentials by Basic or in the body, refresh tokens that
    rotate, RFC 7523 JWT assertions checked against `public_key`) and an API that takes only
    live tokens it issued."""

    lifetime: int = 3600
    public_key: Any = None
    base: str = ""
    #: the token endpoint's next answers (statuses), before it issues tokens again
    token_script: list[int] = field(default_factory=list)
    token_delay: float = 0.0
    #: the API answers 400 quoting the Authorization header it got (an API that echoes)
    echo_auth: bool = False
    #: the API refuses every token (401), live or not
    refuse_all: bool = False
    #: the token endpoint answers 200 with this many bytes of a JSON string (never ending)
    huge: int = 0
    tokens: dict[str, float] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH})
    fetches: list[dict[str, str]] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)

    def issue(self, extra: dict[str, Any] | None = None) -> web.Response:
        token = "tok-" + secrets.token_hex(12)
        self.tokens[token] = time.time() + self.lifetime
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime,
                "instance_url": self.base, **(extra or {})}
        return web.json_response(body)

    async def token(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.content_type == "application/json":
            fields = {k: str(v) for k, v in json.loads(raw).items()}
        else:
            fields = dict(parse_qsl(raw.decode()))
        self.fetches.append(fields)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.huge:
            return web.Response(body=b'{"access_token": "' + b"x" * self.huge,
                                content_type="application/json")
        if self.token_script:
            status = self.token_script.pop(0)
            return web.json_response({"error": "temporarily_unavailable",
                                      "error_description": f"echo {CLIENT_SECRET}"},
                                     status=status)
        grant = fields.get("grant_type")
        if grant == "client_credentials":
            client = fields.get("client_id"), fields.get("client_secret")
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                client = user, password
            if client != (CLIENT_ID, CLIENT_SECRET):
                return web.json_response({"error": "invalid_client",
                                          "error_description": "client authentication failed"},
                                         status=401)
            return self.issue()
        if grant == "refresh_token":
            old = fields.get("refresh_token", "")
            if old not in self.refresh_tokens:
                return web.json_response({"error": "invalid_grant"}, status=400)
            self.refresh_tokens.discard(old)  # rotation: each refresh token works once
            new = f"refresh-token-{len(self.fetches)}"
            self.refresh_tokens.add(new)
            return self.issue({"refresh_token": new})
        if grant == JWT_BEARER_GRANT:
            try:
                claims = jwt.decode(fields.get("assertion", ""), self.public_key,
                                    algorithms=["RS256"], audience=self.base + "/oauth/token")
            except jwt.PyJWTError as exc:
                return web.json_response({"error": "invalid_grant",
                                          "error_description": type(exc).__name__}, status=400)
            if claims.get("iss") != "svc@example.com" or claims["exp"] - claims["iat"] > 3600:
                return web.json_response({"error": "invalid_grant"}, status=400)
            return self.issue()
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def api(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.api_calls.append(auth)
        token = auth.removeprefix("Bearer ")
        if self.echo_auth:
            return web.Response(status=400, text=f"bad request; you sent {auth}")
        if (self.refuse_all or token in self.revoked
                or self.tokens.get(token, 0) < time.time()):
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self.token)
        app.router.add_post("/api/items", self.api)
        return app


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[OAuthFake, RunningServer]]:
    fake = OAuthFake()
    with serve(fake.app()) as server:
        fake.base = server.url
        yield fake, server


@pytest.fixture
def oauth(served: tuple[OAuthFake, RunningServer]) -> OAuthFake:
    fake, server = served
    server.call(lambda: _reset(fake))
    return fake


def _reset(fake: OAuthFake) -> None:
    base, fresh = fake.base, OAuthFake()
    fake.__dict__.update(fresh.__dict__)
    fake.base = base


# -- a destination that declares a grant ------------------------------------------------------


class TokenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: str
    grant: str = "client_credentials"
    client_id: str = CLIENT_ID
    client_secret: SecretStr = SecretStr(CLIENT_SECRET)
    client_auth: str = "basic"
    refresh_token: SecretStr = SecretStr(REFRESH)
    private_key: SecretStr = SecretStr("")
    #: request URLs relative to the token answer's instance_url
    relative: bool = False


class TokenDestination(Destination[TokenSettings]):
    manifest = Manifest(name="tokens", description="a destination with OAuth2 tokens",
                        docs_url="docs/delivery.md", auth="oauth2")

    def token_grant(self) -> TokenGrant:
        s = self.settings
        url = s.base + "/oauth/token"
        base_field = "instance_url" if s.relative else None
        if s.grant == "refresh_token":
            return RefreshToken(token_url=url, refresh_token=s.refresh_token,
                                client_id=s.client_id, client_secret=s.client_secret,
                                api_base_field=base_field)
        if s.grant == "jwt_bearer":
            return JwtBearer(token_url=url, issuer="svc@example.com", audience=url,
                             private_key=s.private_key, api_base_field=base_field)
        return ClientCredentials(token_url=url, client_id=s.client_id,
                                 client_secret=s.client_secret,
                                 client_auth="body" if s.client_auth == "body" else "basic",
                                 api_base_field=base_field)

    def build_item(self, item: OutboxItem) -> PlannedRequest:
        url = "/api/items" if self.settings.relative else self.settings.base + "/api/items"
        return PlannedRequest(json_request("POST", url, {"id": item.message_id}), [item])


def _loaded(tmp_path: Path, base: str, *, private: bool = True, outbox: str | None = None,
            **settings: Any) -> LoadedConfig:
    raw = {"outbox": {"url": outbox or f"sqlite:///{tmp_path / 'outbox.db'}"},
           "destinations": {"api": {
               "plugin": "tokens", "settings": {"base": base, **settings},
               "delivery": {"allow_private_network": private, "concurrency": 4,
                            "backoff_base": 0.01, "backoff_max": 0.02, "timeout": 5}}}}
    return parse_config(raw, base_dir=tmp_path, env={}, types={"tokens": TokenDestination})


def _enqueue(outbox: Outbox, count: int, start: int = 0, now: float | None = None) -> None:
    outbox.enqueue([NewRow("api", f"m{n}", {"messageId": f"m{n}"})
                    for n in range(start, start + count)], now=now)


def _everything_stored(outbox_path: Path) -> bytes:
    """The SQLite file's bytes and its WAL's, as a reader of the disk finds them."""
    found = b""
    for suffix in ("", "-wal"):
        path = Path(str(outbox_path) + suffix)
        if path.exists():
            found += path.read_bytes()
    return found


# -- one daemon ---------------------------------------------------------------------------


def test_one_token_serves_every_worker_and_goes_in_the_authorization_header(
        oauth: OAuthFake, tmp_path: Path) -> None:
    oauth.token_delay = 0.1  # four workers ask at once: one fetch, the others wait for it
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 8)
    report = asyncio.run(deliver_once(_loaded(tmp_path, oauth.base), box))
    assert report.delivered == 8, report
    assert len(oauth.fetches) == 1
    assert oauth.fetches[0] == {"grant_type": "client_credentials"}  # the client in Basic
    (token,) = oauth.tokens
    assert oauth.api_calls == [f"Bearer {token}"] * 8
    box.close()


def test_client_credentials_in_the_body_and_urls_joined_onto_the_answers_api_base(
        oauth: OAuthFake, tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 2)
    loaded = _loaded(tmp_path, oauth.base, client_auth="body", relative=True)
    report = asyncio.run(deliver_once(loaded, box))
    assert report.delivered == 2, report
    assert oauth.fetches == [{"grant_type": "client_credentials", "client_id": CLIENT_ID,
                              "client_secret": CLIENT_SECRET}]
    box.close()


def test_a_token_is_fetched_again_before_it_expires_not_after(oauth: OAuthFake,
                                                               tmp_path: Path) -> None:
    oauth.lifetime = 600  # refreshed in its last minute
    clock = ManualClock(time.time())
    box = SQLiteOutbox(tmp_path / "outbox.db")
    loaded = _loaded(tmp_path, oauth.base)

    def deliver(start: int) -> None:
        _enqueue(box, 1, start, now=clock())
        assert asyncio.run(deliver_once(loaded, box, clock=clock)).delivered == 1

    deliver(0)
    clock.advance(530)  # 70 s left: still used (a new engine reads the one the outbox keeps)
    deliver(1)
    assert len(oauth.fetches) == 1
    clock.advance(20)  # 50 s left: inside the last minute, fetched again first
    deliver(2)
    assert len(oauth.fetches) == 2
    assert len(set(oauth.api_calls)) == 2
    box.close()


def test_a_401_fetches_a_new_token_once_then_the_answer_counts(oauth: OAuthFake,
                                                               tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "outbox.db")
    loaded = _loaded(tmp_path, oauth.base)
    _enqueue(box, 1)
    assert asyncio.run(deliver_once(loaded, box)).delivered == 1
    oauth.revoked.update(oauth.tokens)  # revoked before its time
    _enqueue(box, 1, 1)
    assert asyncio.run(deliver_once(loaded, box)).delivered == 1
    assert len(oauth.fetches) == 2
    assert len(oauth.api_calls) == 3  # the refused one, and the same request again

    oauth.refuse_all = True  # a new token changes nothing: the 401 is the outcome, once
    _enqueue(box, 1, 2)
    report = asyncio.run(deliver_once(loaded, box))
    assert report.dead == 1, report
    assert len(oauth.fetches) == 3 and len(oauth.api_calls) == 5
    (letter,) = box.dead_letters()
    assert letter.reason.startswith("HTTP 401")
    box.close()


def test_a_refused_client_is_a_dead_letter_naming_the_endpoint_never_the_secret(
        oauth: OAuthFake, tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 1)
    loaded = _loaded(tmp_path, oauth.base, client_secret="wrong-secret-value")
    report = asyncio.run(deliver_once(loaded, box))
    assert report.dead == 1, report
    (letter,) = box.dead_letters()
    host = oauth.base.removeprefix("http://")
    assert letter.reason == (f"token request to http://{host}/…: HTTP 401: invalid_client: "
                             "client authentication failed")
    assert oauth.api_calls == []
    box.close()


def test_a_token_endpoint_that_fails_is_retried_and_its_echo_of_the_secret_hidden(
        oauth: OAuthFake, tmp_path: Path) -> None:
    oauth.token_script = [503]
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 1)
    loaded = _loaded(tmp_path, oauth.base)
    report = asyncio.run(deliver_once(loaded, box))
    assert report.retried == 1, report
    assert report.destinations["api"].last_error is not None
    assert "HTTP 503: temporarily_unavailable: echo <secret>" in str(report)
    assert CLIENT_SECRET not in str(report)
    assert box.circuit("api").failures == 1  # the token endpoint down is the destination down


def test_the_token_request_goes_through_the_egress_guard(oauth: OAuthFake,
                                                         tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 1)
    report = asyncio.run(deliver_once(_loaded(tmp_path, oauth.base, private=False), box))
    assert report.retried == 1, report
    assert "token request: connection error" in str(report)
    assert "egress guard: 127.0.0.1 is loopback" in str(report)
    assert oauth.fetches == []
    box.close()


def test_a_token_answer_is_read_only_up_to_the_destinations_limit(oauth: OAuthFake,
                                                                  tmp_path: Path) -> None:
    oauth.huge = 8 << 20  # 8 MiB; the engine reads 1 MiB of an answer, then hangs up
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 1)
    report = asyncio.run(deliver_once(_loaded(tmp_path, oauth.base), box))
    assert report.retried == 1, report
    assert "HTTP 200 without a JSON object" in str(report)
    box.close()


def test_a_token_never_shows_in_dead_letters_logs_errors_or_the_outbox(
        oauth: OAuthFake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    oauth.echo_auth = True  # the API quotes the Authorization header in its 400
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 3)
    with caplog.at_level(logging.DEBUG):
        report = asyncio.run(deliver_once(_loaded(tmp_path, oauth.base), box))
    assert report.dead == 3, report
    (token,) = oauth.tokens
    letters = box.dead_letters()
    assert {letter.reason for letter in letters} == {
        "HTTP 400: bad request; you sent Bearer <token>"}
    shown = caplog.text + str(report) + "".join(letter.reason for letter in letters)
    assert token not in shown and "fetched an OAuth2 access token" in caplog.text
    box.close()
    stored = _everything_stored(tmp_path / "outbox.db")
    assert token.encode() not in stored and CLIENT_SECRET.encode() not in stored
    with read_only(tmp_path / "outbox.db") as db:
        (row,) = db["outbox_tokens"].rows_where(select="sealed")
    assert row["sealed"] and token.encode() not in row["sealed"]


# -- the other grants ---------------------------------------------------------------------


def test_refresh_tokens_rotate_and_the_newest_is_used(oauth: OAuthFake, tmp_path: Path) -> None:
    clock = ManualClock(time.time())
    box = SQLiteOutbox(tmp_path / "outbox.db")
    loaded = _loaded(tmp_path, oauth.base, grant="refresh_token")
    for n in range(3):
        _enqueue(box, 1, n, now=clock())
        assert asyncio.run(deliver_once(loaded, box, clock=clock)).delivered == 1
        clock.advance(3600)  # expired: the next delivery refreshes it
    sent = [f["refresh_token"] for f in oauth.fetches]
    assert sent == [REFRESH, "refresh-token-1", "refresh-token-2"]  # each the one answered
    assert all(f["grant_type"] == "refresh_token" for f in oauth.fetches)
    box.close()


def test_a_jwt_bearer_assertion_is_signed_and_accepted(oauth: OAuthFake, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oauth.public_key = key.public_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    box = SQLiteOutbox(tmp_path / "outbox.db")
    _enqueue(box, 1)
    loaded = _loaded(tmp_path, oauth.base, grant="jwt_bearer", private_key=pem)
    assert asyncio.run(deliver_once(loaded, box)).delivered == 1
    (fields,) = oauth.fetches
    assert fields["grant_type"] == JWT_BEARER_GRANT
    box.close()


def test_read_token_refuses_answers_it_cannot_use() -> None:
    grant = ClientCredentials(token_url="https://auth.example.com/t", client_id="c",
                              client_secret=SecretStr("x"), api_base_field="rest_url")
    request = grant.token_request(0.0)

    def reason(status: int, body: Any) -> str:
        response = httpx.Response(status, json=body, request=request)
        with pytest.raises(Exception) as caught:
            read_token(response, grant, 0.0)
        return str(caught.value)

    assert reason(200, {"expires_in": 60, "rest_url": "https://r"}).endswith("no access_token")
    assert reason(200, {"access_token": "t", "expires_in": -1, "rest_url": "https://r"}
                  ).endswith("expires_in is no positive number of seconds")
    assert reason(200, {"access_token": "t", "expires_in": 60, "rest_url": "file:///x"}
                  ).endswith("the answer's rest_url is no http(s) URL")
    token = read_token(httpx.Response(200, json={"access_token": "tok-42", "expires_in": 100,
                                                 "rest_url": "https://r/"}, request=request),
                       grant, 1000.0)
    assert (token.expires_at, token.refresh_at, token.api_base) == (1100.0, 1090.0, "https://r/")
    assert "tok-42" not in repr(token)


# -- a fleet on one outbox --------------------------------------------------------------------


async def _fleet(loaded: LoadedConfig, outboxes: list[Outbox]) -> list[int]:
    reports = await asyncio.gather(*(deliver_once(loaded, box) for box in outboxes))
    return [r.delivered for r in reports]


@pytest.mark.postgres
def test_daemons_on_one_postgresql_outbox_share_one_sealed_token(
        oauth: OAuthFake, tmp_path: Path, pg_url: str) -> None:
    oauth.token_delay = 0.3  # every daemon asks while the first fetch is in flight
    daemons = [open_outbox(pg_url) for _ in range(3)]
    _enqueue(daemons[0], 12)
    loaded = _loaded(tmp_path, oauth.base, outbox=pg_url)
    delivered = asyncio.run(_fleet(loaded, daemons))
    assert sum(delivered) == 12
    assert len(oauth.fetches) == 1
    (token,) = oauth.tokens
    late = open_outbox(pg_url)  # a daemon started later uses the stored token
    _enqueue(late, 2, 12)
    assert asyncio.run(deliver_once(loaded, late)).delivered == 2
    assert len(oauth.fetches) == 1
    for box in [*daemons, late]:
        box.close()
    with psycopg.connect(pg_url) as conn:
        (sealed,) = conn.execute("SELECT sealed FROM outbox_tokens").fetchone()
        tables = conn.execute("SELECT string_agg(t::text, ' ') FROM outbox AS t").fetchone()
    assert sealed and token.encode() not in bytes(sealed)
    assert token not in (tables[0] or "")


def test_a_claim_whose_daemon_died_is_taken_over_after_it_runs_out(
        oauth: OAuthFake, tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "outbox.db")
    grant = TokenDestination.configured(
        TokenSettings(base=oauth.base), {}).token_grant()
    key = grant.identity()
    now = time.time()
    # A daemon claimed the fetch and died: its claim holds until it runs out.
    assert box.swap_token(StoredToken(key), StoredToken(key, fetching_until=now + 0.3), now)
    tokens = Tokens(box, claim_hold=0.3)

    async def fetch(request: httpx.Request) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.send(request)

    started = time.monotonic()
    token = asyncio.run(tokens.get(grant, fetch))
    assert time.monotonic() - started >= 0.25
    assert token.value in oauth.tokens and tokens.fetches == 1
    assert box.stored_token(key).fetching_until is None
    box.close()


class _LockedStore:
    """An outbox whose token table cannot be reached (a file locked for too long)."""

    def stored_token(self, key: str) -> StoredToken:
        raise OSError("database is locked")

    def swap_token(self, old: StoredToken, new: StoredToken, now: float | None = None) -> bool:
        raise OSError("database is locked")


def test_an_unreachable_outbox_costs_the_sharing_not_the_token(
        oauth: OAuthFake, caplog: pytest.LogCaptureFixture) -> None:
    grant = TokenDestination.configured(TokenSettings(base=oauth.base), {}).token_grant()
    tokens = Tokens(_LockedStore())

    async def fetch(request: httpx.Request) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.send(request)

    token = asyncio.run(tokens.get(grant, fetch))
    assert token.value in oauth.tokens
    assert "could not share an OAuth2 token through the outbox (OSError" in caplog.text
