"""OAuth2 access tokens, fetched, cached, shared and refreshed by the engine for destinations
whose plugin declares a grant (`Destination.token_grant()`, crossdock.oauth).

    tokens = Tokens(outbox)                          one per engine: every worker shares it
    token = await tokens.get(grant, fetch)           cached, or fetched through `fetch` (the
                                                     worker's own send: egress guard, bounded
                                                     read, timeout)
    request = authorize(planned.request, grant, token)
    ... a 401 ...
    token = await tokens.get(grant, fetch, stale=token.value)    a new one, once

What it keeps:

- One token per grant (`grant.identity()`: endpoint, client, scope, fields and a digest of
  the secrets) in memory, used until shortly before it expires (`refresh_at`: the last minute
  of its life, or its last tenth for a short-lived one), then fetched again. Concurrent
  callers wait for the one fetch in flight (a lock per grant).
- On an outbox shared by daemons (PostgreSQL, or SQLite files shared by processes), the token
  is also stored in `outbox_tokens`, **sealed**: AES-256-GCM under a key derived (HKDF-SHA256)
  from the grant's own secrets, which every daemon of the fleet has in its config and the
  database does not. A reader of the database finds no usable token; a daemon that can unseal
  it uses it instead of asking the token endpoint. One daemon at a time fetches (a claim,
  compare-and-swap on the row's version, held for `claim_hold` seconds); the others wait for
  what it stores, and fetch themselves only when the claim runs out (the claimer died).
- A 401 on a request sent with token T asks for a token other than T: whoever sees a newer one
  (in memory or in the store) uses it, else one fetch replaces T.

What it never does: write a token in an error, a log line or an outbox row in clear. Errors
name the token endpoint by scheme, host and port, and quote only the OAuth2 `error` and
`error_description` of a refusal, scrubbed of the grant's secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crossdock.destination import RETRYABLE_STATUS, parse_retry_after, response_json
from crossdock.oauth import TokenGrant
from crossdock.outbox.base import StoredToken
from crossdock.redact import scrub

log = logging.getLogger("crossdock.delivery")

#: lifetime assumed when a token answer has no expires_in (RFC 6749 leaves it to the docs)
DEFAULT_LIFETIME = 600.0
#: a token is fetched again this long before it expires, at most (its last tenth when shorter)
REFRESH_MARGIN = 60.0
#: how long one daemon's claim to fetch a shared token holds before another may fetch
CLAIM_HOLD = 30.0
#: what replaces a token wherever an error might quote it
HIDDEN = "<token>"
_SALT = b"crossdock oauth2 token v1"


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and what came with it. `value` and `refresh_token` never show in a
    repr (and so in no log line of one)."""

    value: str = field(repr=False)
    expires_at: float
    #: when to fetch the next one: before `expires_at`, so no request leaves with a token
    #: about to die on the way
    refresh_at: float
    #: the API's base URL from the answer (the grant's api_base_field), if it names one
    api_base: str | None = None
    #: a rotated refresh token the endpoint answered, used for the next refresh
    refresh_token: str | None = field(default=None, repr=False)

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at


class TokenError(Exception):
    """No token: `reason` (for the items' outcome, holding no secret), whether to retry (a
    timeout, a 5xx, a 429) or not (the endpoint refused the credentials), the wait it asked
    for, and whether it says the destination is down (for its circuit)."""

    def __init__(self, reason: str, *, retry: bool, after: float | None = None,
                 down: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.after = after
        self.down = down


def origin(url: httpx.URL) -> str:
    """Scheme, host and port of a URL, for errors (the path or query may hold a secret)."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}/…"


def read_token(response: httpx.Response, grant: TokenGrant, now: float) -> Token:
    """The token in a token endpoint's answer, or TokenError saying why there is none."""
    where = f"token request to {origin(response.request.url)}"
    status = response.status_code
    data = response_json(response)
    if not 200 <= status < 300:
        said = ""
        if data is not None:
            parts = [str(data.get(k)) for k in ("error", "error_description")
                     if isinstance(data.get(k), str | int)]
            said = ": " + ": ".join(parts)[:300] if parts else ""
        reason = scrub(f"{where}: HTTP {status}{said}", grant.secrets())
        retry = status in RETRYABLE_STATUS or status >= 500
        raise TokenError(reason, retry=retry, down=retry,
                         after=parse_retry_after(response.headers.get("retry-after")))
    # Never quote a 2xx body: it may hold a token.
    if data is None:
        raise TokenError(f"{where}: HTTP {status} without a JSON object", retry=True)
    value = data.get("access_token")
    if not isinstance(value, str) or not value.strip():
        raise TokenError(f"{where}: the answer has no access_token", retry=True)
    lifetime = data.get("expires_in", DEFAULT_LIFETIME)
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if (not isinstance(lifetime, int | float) or isinstance(lifetime, bool)
            or not math.isfinite(lifetime) or lifetime <= 0):
        raise TokenError(f"{where}: expires_in is no positive number of seconds",
                         retry=True)
    api_base = None
    if grant.api_base_field:
        base = data.get(grant.api_base_field)
        if not isinstance(base, str) or not base.startswith(("https://", "http://")):
            raise TokenError(f"{where}: the answer's {grant.api_base_field} is no "
                             "http(s) URL", retry=True)
        api_base = base
    rotated = data.get("refresh_token")
    margin = min(REFRESH_MARGIN, lifetime / 10)
    return Token(value, now + lifetime, now + lifetime - margin, api_base,
                 rotated if isinstance(rotated, str) and rotated else None)


def authorize(request: httpx.Request, grant: TokenGrant, token: Token) -> httpx.Request:
    """`request` as sent: the token in the grant's header, and a relative URL joined onto the
    token's API base. The plugin's request is left as it is.

    Built as json_request builds one (headers given at once, the body's bytes kept), and the
    joined URL cached: parsing and joining were most of the cost of every request."""
    url = request.url
    if url.is_relative_url:
        if token.api_base is None:
            raise TokenError("the plugin built a relative URL but its grant names no "
                             "api_base_field to join it to", retry=True)
        url = _joined(token.api_base, str(url))
    name = grant.header.lower().encode()
    headers = [("Host", url.netloc.decode("ascii"))]
    headers += [(k.decode(), v.decode()) for k, v in request.headers.raw
                if k.lower() not in (b"host", name)]
    headers.append((grant.header, grant.prefix + token.value))
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed body: httpx reads it as it sends
        return httpx.Request(request.method, url, headers=headers, stream=request.stream,
                             extensions=request.extensions)
    sent = httpx.Request(request.method, url, headers=headers,
                         stream=httpx.ByteStream(content), extensions=request.extensions)
    sent.read()  # `content` as httpx.Request(content=...) leaves it
    return sent


@lru_cache(maxsize=1024)
def _joined(base: str, relative: str) -> httpx.URL:
    return httpx.URL(base).join(relative)


def hide(text: str, token: Token | None) -> str:
    """`text` with the token (and a rotated refresh token) replaced, in case an answer echoed
    it into a reason."""
    if token is None:
        return text
    secrets = [token.value] + ([token.refresh_token] if token.refresh_token else [])
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


# -- sealing, for a token shared through the outbox ------------------------------------------


class Sealer:
    """AES-256-GCM under a key derived from a grant's secrets: the outbox row of a shared token
    is readable only with the config that fetched it."""

    def __init__(self, grant: TokenGrant) -> None:
        self.identity = grant.identity()
        material = "\0".join(grant.secrets()).encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT,
                   info=self.identity.encode()).derive(material)
        self._aead = AESGCM(key)

    def seal(self, token: Token) -> bytes:
        plain = json.dumps({"v": token.value, "e": token.expires_at, "r": token.refresh_at,
                            "b": token.api_base, "t": token.refresh_token}).encode()
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, self.identity.encode())

    def open(self, sealed: bytes) -> Token | None:
        """The token, or None when it cannot be unsealed (another key, a damaged row)."""
        try:
            plain = self._aead.decrypt(sealed[:12], sealed[12:], self.identity.encode())
            data = json.loads(plain)
            return Token(str(data["v"]), float(data["e"]), float(data["r"]), data["b"],
                         data["t"])
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None


class TokenStore(Protocol):
    """Where daemons sharing an outbox share tokens: the outbox (`Outbox` declares both)."""

    def stored_token(self, key: str) -> StoredToken:
        """The row of a grant (version 0 when there is none)."""
        ...

    def swap_token(self, old: StoredToken, new: StoredToken, now: float | None = None) -> bool:
        """Store `new` (version old.version + 1) if the row is still at `old.version`."""
        ...


Fetch = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Tokens:
    """The engine's tokens, one per grant, shared by every worker that holds this object and,
    through `store`, by every daemon on the same outbox. `clock` is the engine's (expiry is
    reckoned on it); waiting for another daemon's fetch is paced in real time, so a test's
    frozen clock cannot make it spin."""

    def __init__(self, store: TokenStore | None = None, *,
                 clock: Callable[[], float] = time.time, claim_hold: float = CLAIM_HOLD,
                 poll: float = 0.05) -> None:
        self.store = store
        self.clock = clock
        self.claim_hold = claim_hold
        self.poll = poll
        self._memory: dict[str, Token] = {}
        self._refresh: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._sealers: dict[str, Sealer] = {}
        #: token requests sent by this process (for tests and the docs' figures)
        self.fetches = 0

    async def get(self, grant: TokenGrant, fetch: Fetch, *, stale: str | None = None
                  ) -> Token:
        """A token for `grant` that is fresh and is not `stale` (the one a 401 answered)."""
        key = grant.identity()
        token = self._memory.get(key)
        if token is not None and token.value != stale and token.fresh(self.clock()):
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self._memory.get(key)
            if token is not None and token.value != stale and token.fresh(self.clock()):
                return token
            token = None
            if self.store is not None:
                try:
                    token = await self._shared(grant, key, fetch, stale)
                except TokenError:
                    raise
                except Exception as exc:  # the outbox unreachable: not a reason to stop
                    log.warning("could not share an OAuth2 token through the outbox (%s: %s); "
                                "this daemon fetches its own", type(exc).__name__, exc)
            if token is None:
                token = await self._fetch(grant, key, fetch)
            self._memory[key] = token
            return token

    async def _fetch(self, grant: TokenGrant, key: str, fetch: Fetch) -> Token:
        now = self.clock()
        request = grant.token_request(now, self._refresh.get(key))
        self.fetches += 1
        response = await fetch(request)
        token = read_token(response, grant, self.clock())
        if token.refresh_token:
            self._refresh[key] = token.refresh_token
        log.info("fetched an OAuth2 access token (%s grant) from %s, valid for %.0fs",
                 grant.kind, origin(request.url), token.expires_at - now)
        return token

    def _sealer(self, grant: TokenGrant, key: str) -> Sealer:
        sealer = self._sealers.get(key)
        if sealer is None:
            sealer = self._sealers[key] = Sealer(grant)
        return sealer

    async def _shared(self, grant: TokenGrant, key: str, fetch: Fetch, stale: str | None
                      ) -> Token:
        assert self.store is not None
        store = self.store
        sealer = self._sealer(grant, key)
        waited_until = time.monotonic() + self.claim_hold
        while True:
            row = store.stored_token(key)
            now = self.clock()
            token = sealer.open(row.sealed) if row.sealed else None
            if token is not None:
                if token.refresh_token:
                    self._refresh[key] = token.refresh_token
                if token.value != stale and token.fresh(now):
                    return token
            free = row.fetching_until is None or row.fetching_until <= now
            if free or time.monotonic() >= waited_until:
                claim = replace(row, fetching_until=now + self.claim_hold)
                if not store.swap_token(row, claim, now):
                    continue  # another daemon moved first: read what it did
                claimed = replace(claim, version=row.version + 1)
                try:
                    token = await self._fetch(grant, key, fetch)
                except BaseException:
                    with contextlib.suppress(Exception):  # else the claim runs out
                        store.swap_token(claimed, replace(claimed, fetching_until=None),
                                         self.clock())
                    raise
                with contextlib.suppress(Exception):  # fetched: used here even if not shared
                    self._put(store, key, sealer, claimed, token)
                return token
            await asyncio.sleep(self.poll)  # another daemon is fetching: wait for its token

    def _put(self, store: TokenStore, key: str, sealer: Sealer, claimed: StoredToken,
             token: Token) -> None:
        new = StoredToken(key, sealer.seal(token), token.expires_at, None)
        row = claimed
        for _ in range(5):
            if store.swap_token(row, new, self.clock()):
                return
            row = store.stored_token(key)  # the claim ran out and another took it over
        log.warning("could not share an OAuth2 token through the outbox: its row keeps "
                    "changing; this daemon keeps its own copy")


def describe_fetch_error(error: str) -> TokenError:
    """A token request that got no answer (timeout, connection error): retried, and the
    destination counted down, as any request that got no answer."""
    return TokenError(f"token request: {error}", retry=True, down=True)


__all__ = ["HIDDEN", "Sealer", "StoredToken", "Token", "TokenError", "TokenStore", "Tokens",
           "authorize", "describe_fetch_error", "hide", "read_token"]
