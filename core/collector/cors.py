"""CORS per write key: which web pages may send with which key (docs/sources.md).

    policy = OriginPolicy(config.collector)
    policy.check(credential.key_id, origin)    # ApiError 403 naming the origin, or None

Each write key lists the origins whose pages may use it (`collector.write_keys[].origins`,
crossdock.origins). A request with an `Origin` header, which every browser sends on a
cross-origin request and on a beacon, is checked against the origins of the key it presents:
any other origin is refused with 403 naming it, before anything is accepted. A request with no
`Origin` (a server SDK, curl) is not a browser's, and the key alone decides.

A preflight (`OPTIONS`) carries neither the key nor the body, so it is answered for the origins
that any key allows; the request that follows meets its own key's check. The answers on the
browser paths (`CorsHeaders`) carry `Access-Control-Allow-Origin` only for an origin some key
allows: the page then reads the answer, a refusal included, and an SDK drops what a 4xx
refused instead of retrying it as a network failure. An origin no key allows gets its 403
without that header, so the browser shows the page no answer at all.

`Access-Control-Allow-Origin: *` is answered only for an origin that nothing but a `*`
pattern allows, and never with `Access-Control-Allow-Credentials` (config refuses
`allow_credentials` with `*`). `Retry-After` is exposed, so an SDK can read how long a 429
asks it to wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossdock.collector.auth import key_id
from crossdock.collector.errors import ApiError
from crossdock.config import CollectorConfig
from crossdock.origins import OriginPattern, normalize_origin

#: how long a browser may reuse a preflight's answer: a changed `origins` list holds for every
#: page within ten minutes
PREFLIGHT_MAX_AGE = 600
#: a header list as Access-Control-Request-Headers carries it (RFC 9110 tokens and commas)
_HEADER_LIST = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$")


@dataclass(frozen=True, slots=True)
class _KeyOrigins:
    patterns: tuple[OriginPattern, ...]
    allow_credentials: bool

    def allows(self, origin: str | None) -> OriginPattern | None:
        for pattern in self.patterns:
            if pattern.matches(origin):
                return pattern
        return None


@dataclass(frozen=True, slots=True)
class Grant:
    """What the answer to an allowed origin says: `Access-Control-Allow-Origin` (the origin
    itself, or `*`) and whether credentials may go with the request."""

    allow_origin: str
    credentials: bool

    def headers(self) -> dict[str, str]:
        headers = {"Access-Control-Allow-Origin": self.allow_origin,
                   "Access-Control-Expose-Headers": "Retry-After"}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers


class OriginPolicy:
    """The origins of every write key of a collector config, by key id."""

    def __init__(self, config: CollectorConfig) -> None:
        self._by_key = {
            key_id(write_key.key.get_secret_value()): _KeyOrigins(
                tuple(OriginPattern.parse(text) for text in write_key.origins),
                write_key.allow_credentials)
            for write_key in config.write_keys
        }

    def check(self, key: str, origin: str | None) -> None:
        """Refuse (403) a browser's request whose origin the key `key` (a key id) does not
        list; `origin` is the Origin header, None when there is none."""
        if origin is None:
            return
        rules = self._by_key.get(key)
        if rules is None or rules.allows(normalize_origin(origin)) is None:
            raise ApiError(403, f"origin: {origin!r} may not send with this write key; list "
                                "it in the key's origins (collector.write_keys)")

    def grant(self, origin: str) -> Grant | None:
        """What to answer an origin that some key allows (an exact or `*.domain` pattern
        before `*`), or None when no key allows it."""
        normalized = normalize_origin(origin)
        exact = [rules for rules in self._by_key.values()
                 if (found := rules.allows(normalized)) is not None and not found.is_any]
        if exact:
            return Grant(origin, any(rules.allow_credentials for rules in exact))
        if any(rules.allows(normalized) is not None for rules in self._by_key.values()):
            return Grant("*", credentials=False)
        return None

    def preflight(self, origin: str | None, request_headers: str | None) -> dict[str, str]:
        """The headers of the answer to a preflight (its Access-Control-Allow-Origin comes
        from `CorsHeaders`), or ApiError: 400 for no Origin, 403 for an origin no key allows."""
        if origin is None:
            raise ApiError(400, "origin: a CORS preflight (OPTIONS) needs the Origin header")
        if self.grant(origin) is None:
            raise ApiError(403, f"origin: {origin!r} may not send with any write key; list "
                                "it in a key's origins (collector.write_keys)")
        headers = {"Access-Control-Allow-Methods": "GET, POST",
                   "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE)}
        # `Access-Control-Allow-Headers: *` would not cover Authorization (Fetch standard), so
        # the headers asked for are named back: the SDKs' own (AnonymousId, SentAt,
        # X-Retry-Count, ...) differ from one version to the next.
        if request_headers and _HEADER_LIST.match(request_headers.strip()):
            headers["Access-Control-Allow-Headers"] = request_headers.strip()
        return headers


class CorsHeaders:
    """Adds the CORS headers to every answer on a browser path (`is_browser_path`) to a request
    with an Origin that some key allows, and `Vary: Origin` to every answer there, so no
    cache hands one origin's answer to another. A plain ASGI middleware, like the collector's
    others (app.CountRequests)."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy,
                 is_browser_path: Callable[[str], bool]) -> None:
        self.app = app
        self.policy = policy
        self.is_browser_path = is_browser_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.is_browser_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        grant = self.policy.grant(origin) if origin is not None else None
        added = [(b"vary", b"Origin")]
        if grant is not None:
            added += [(name.lower().encode(), value.encode())
                      for name, value in grant.headers().items()]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
