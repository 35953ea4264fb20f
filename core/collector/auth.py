"""Who is calling: Basic auth with a write key as the user name (Segment SDKs), or a Bearer key.

Segment endpoints (/v1/track, ..., /v1/batch) take a write key (`collector.write_keys`) either
way, or as the `writeKey` that browser SDKs put in the body or the query; the user API
(/v1/accounts/{account}/...) takes one of that account's keys (`collector.accounts.<name>.keys`)
as a Bearer token only: its docs and its 401 say Bearer, and one way in is one way to audit.
Every configured key is compared with hmac.compare_digest, so the time taken says nothing about
how much of a key was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from pydantic import SecretStr

from crossdock.config import CollectorConfig

#: what a Segment endpoint's 401 offers (Basic with the write key, or Bearer)
SEGMENT_CHALLENGE = 'Basic realm="crossdock", Bearer'
#: what the user API's 401 offers: Bearer only
ACCOUNT_CHALLENGE = 'Bearer realm="crossdock"'


class AuthError(Exception):
    """Refused: `status` is 401 (no or wrong credentials) or 404 (unknown account)."""

    def __init__(self, status: int, message: str, challenge: str = SEGMENT_CHALLENGE) -> None:
        self.status = status
        self.message = message
        #: the WWW-Authenticate header of a 401: the schemes the endpoint takes
        self.challenge = challenge
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Credential:
    """An accepted caller. `key_id` is a digest of the key: it names the key for rate limits
    and request dedup without keeping the secret around."""

    account: str | None
    key_id: str
    rate_limit_per_minute: int


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def presented_key(authorization: str | None) -> str | None:
    """The key in an Authorization header: Basic (the user name) or Bearer (the token)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user = decoded.partition(":")[0]
        return user or None
    return None


def _matches(presented: str, keys: list[SecretStr]) -> bool:
    found = False
    for key in keys:
        # No early exit: every key is compared whatever the outcome.
        found |= hmac.compare_digest(presented.encode(), key.get_secret_value().encode())
    return found


class Authenticator:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        # Each write key's bytes and id, worked out once: every tracking request compares
        # the presented key with all of them, and hashing the key for its id per request
        # was a few microseconds of the event loop's time each.
        self._write_keys = [(k.key.get_secret_value().encode(), key_id(k.key.get_secret_value()))
                            for k in config.write_keys]

    def write_key(self, authorization: str | None, fallback: str | None = None) -> Credential:
        """The caller of a Segment endpoint, or AuthError: the key in the Authorization header,
        else `fallback`, the `writeKey` a browser SDK sends in the body or the query."""
        presented = presented_key(authorization) or fallback
        if presented is None:
            raise AuthError(401, "authorization: send the write key as the Basic auth user "
                                 "name, as a Bearer token, or as writeKey in the body")
        given = presented.encode()
        found: str | None = None
        for secret, secret_id in self._write_keys:
            # No early exit: every key is compared whatever the outcome.
            if hmac.compare_digest(given, secret):
                found = secret_id
        if found is None:
            raise AuthError(401, "authorization: unknown write key")
        return Credential(None, found, self.config.rate_limit_per_minute)

    def account(self, account: str, authorization: str | None) -> Credential:
        """The caller of the user API for `account`, or AuthError."""
        settings = self.config.accounts.get(account)
        if settings is None:
            raise AuthError(404, f"account: unknown account {account!r}")
        scheme, _, value = (authorization or "").strip().partition(" ")
        presented = value.strip() if scheme.lower() == "bearer" else ""
        if not presented:
            got = f" (got {scheme[:20]!r} auth)" if scheme and scheme.lower() != "bearer" else ""
            raise AuthError(401, f"authorization: send a key of account {account!r} as "
                                 f"'Authorization: Bearer <key>'{got}", ACCOUNT_CHALLENGE)
        if not _matches(presented, settings.keys):
            raise AuthError(401, f"authorization: not a key of account {account!r}",
                            ACCOUNT_CHALLENGE)
        limit = settings.rate_limit_per_minute or self.config.rate_limit_per_minute
        return Credential(account, key_id(presented), limit)
