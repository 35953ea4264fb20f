"""How a destination gets its OAuth2 access tokens, declared by its plugin as data: the grant.

A plugin whose API takes short-lived access tokens returns one of these from
`Destination.token_grant()`, built from its settings; the engine (crossdock.delivery.tokens)
fetches the token, caches it, shares it between workers (and between daemons on one outbox),
refreshes it before it expires and once after a 401, and puts it on every request. The plugin
never sees a token and does no I/O:

    ClientCredentials(token_url, client_id, client_secret)      RFC 6749 section 4.4
    RefreshToken(token_url, refresh_token, client_id, ...)      RFC 6749 section 6
    Password(token_url, username, password, client_id, ...)     RFC 6749 section 4.3
    JwtBearer(token_url, issuer, audience, private_key, ...)    RFC 7523 section 2.1

Each grant knows how to write its token request (`token_request(now)`: pure, the time is what
a signed assertion carries) and which secrets it holds (`secrets()`: the engine keeps them out
of every error and derives the key it seals a shared token with from them). What varies by
vendor is data on the grant, not code: the body as a form or as JSON (Salesforce Marketing
Cloud takes JSON), the client's credentials in a Basic header or in the body, extra fields
(`params`: SFMC's account_id), and `api_base_field`, the field of the token answer that holds
the base URL of the API (SFMC's rest_instance_url, Pipedrive's api_domain): a plugin whose API
host comes with the token builds its request URLs relative (`/hub/v1/...`) and the engine
joins them onto that base.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from crossdock.kit import basic_auth

__all__ = ["ClientCredentials", "JwtBearer", "Password", "RefreshToken", "TokenGrant"]

#: RFC 7523's grant type for a signed JWT exchanged for an access token
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True, kw_only=True)
class TokenGrant:
    """What every grant shares: where its token endpoint is and how to talk to it.

    `body`: the token request's body as a form (`application/x-www-form-urlencoded`, the
    RFC's) or as JSON. `params`: more fields of the request, as the vendor documents them.
    `api_base_field`: the field of the token answer holding the API's base URL, onto which the
    engine joins request URLs the plugin left relative. `header` and `prefix`: where the
    token goes on each request (`Authorization: Bearer <token>` unless a vendor says
    otherwise)."""

    token_url: str
    scope: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    body: Literal["form", "json"] = "form"
    api_base_field: str | None = None
    header: str = "Authorization"
    prefix: str = "Bearer "

    @property
    def kind(self) -> str:
        """The grant's name, as errors and the docs say it."""
        raise NotImplementedError

    def fields(self, now: float, refresh_token: str | None) -> dict[str, str]:
        """The grant's own fields of the token request (grant_type and its credentials);
        `refresh_token`: one the token endpoint sent since (rotation), used instead of the
        configured one."""
        raise NotImplementedError

    def client_header(self) -> str | None:
        """The Authorization header of the token request itself (client authentication by
        HTTP Basic), or None when the credentials go in the body."""
        return None

    def secrets(self) -> list[str]:
        """The secret values the grant holds (never shown; the sealing key comes from them)."""
        raise NotImplementedError

    def identity(self) -> str:
        """What tells this grant's tokens from another's: the endpoint, the client, the scope,
        the fields, and a digest of the secrets (two configs with the same client id but
        another secret never share a token). The engine's cache key, asked for at every
        request: worked out once."""
        return self._identity

    @cached_property
    def _identity(self) -> str:
        digest = hashlib.sha256("\0".join(self.secrets()).encode()).hexdigest()
        parts = [self.kind, self.token_url, self.scope or "", json.dumps(
            dict(sorted(self.params.items()))), self.public_id(), digest]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def public_id(self) -> str:
        """The grant's non-secret identity (a client id, an issuer)."""
        return ""

    def token_request(self, now: float, refresh_token: str | None = None) -> httpx.Request:
        """The request for a new access token, made at `now` (epoch seconds)."""
        values = dict(self.params)
        if self.scope:
            values["scope"] = self.scope
        values.update(self.fields(now, refresh_token))
        headers = {"Accept": "application/json"}
        client = self.client_header()
        if client is not None:
            headers["Authorization"] = client
        if self.body == "json":
            return httpx.Request("POST", self.token_url, json=values, headers=headers)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return httpx.Request("POST", self.token_url, content=urlencode(values).encode(),
                             headers=headers)


@dataclass(frozen=True, kw_only=True)
class ClientCredentials(TokenGrant):
    """The client credentials grant (RFC 6749 section 4.4): the client's id and secret for a
    token. `client_auth`: `basic` (an Authorization header, the RFC's preference) or `body`
    (client_id and client_secret as fields, as SFMC and many others want)."""

    client_id: str
    client_secret: SecretStr
    client_auth: Literal["basic", "body"] = "basic"

    @property
    def kind(self) -> str:
        return "client_credentials"

    def fields(self, now: float, refresh_token: str | None) -> dict[str, str]:
        out = {"grant_type": "client_credentials"}
        if self.client_auth == "body":
            out.update(client_id=self.client_id,
                       client_secret=self.client_secret.get_secret_value())
        return out

    def client_header(self) -> str | None:
        if self.client_auth != "basic":
            return None
        return basic_auth(self.client_id, self.client_secret.get_secret_value())

    def secrets(self) -> list[str]:
        return [self.client_secret.get_secret_value()]

    def public_id(self) -> str:
        return self.client_id


@dataclass(frozen=True, kw_only=True)
class ClientOptional(TokenGrant):
    """What the grants a client may (not must) authenticate share: the client's id and secret
    in a Basic header (`client_auth: basic`) or as body fields (`body`), or no client at all
    (no client_id)."""

    client_id: str = ""
    client_secret: SecretStr | None = None
    client_auth: Literal["basic", "body"] = "basic"

    def client_fields(self) -> dict[str, str]:
        """The client's body fields (none when it authenticates by header, or is none)."""
        if self.client_auth != "body" or not self.client_id:
            return {}
        out = {"client_id": self.client_id}
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret.get_secret_value()
        return out

    def client_header(self) -> str | None:
        if self.client_auth != "basic" or not self.client_id:
            return None
        secret = self.client_secret.get_secret_value() if self.client_secret else ""
        return basic_auth(self.client_id, secret)

    def client_secrets(self) -> list[str]:
        return [] if self.client_secret is None else [self.client_secret.get_secret_value()]

    def public_id(self) -> str:
        return self.client_id


@dataclass(frozen=True, kw_only=True)
class RefreshToken(ClientOptional):
    """The refresh token grant (RFC 6749 section 6): a long-lived refresh token (from an
    authorization the operator made once) for short-lived access tokens. A token endpoint that
    rotates refresh tokens answers a new one: the engine uses it from then on (and shares it,
    sealed, with the other daemons of the outbox)."""

    refresh_token: SecretStr

    @property
    def kind(self) -> str:
        return "refresh_token"

    def fields(self, now: float, refresh_token: str | None) -> dict[str, str]:
        return {"grant_type": "refresh_token",
                "refresh_token": refresh_token or self.refresh_token.get_secret_value(),
                **self.client_fields()}

    def secrets(self) -> list[str]:
        return [self.refresh_token.get_secret_value(), *self.client_secrets()]


@dataclass(frozen=True, kw_only=True)
class Password(ClientOptional):
    """The resource owner password credentials grant (RFC 6749 section 4.3): a user's name and
    password, with the client's id and secret, for a token (MailUp's "password flow"). Every
    fetch sends the password again rather than the refresh token the answer may carry: a
    refresh token the server stopped honouring would otherwise stop delivery until a restart,
    while the password stays good as long as the operator's configuration does. The client
    goes in the body unless `client_auth` says basic."""

    username: str
    password: SecretStr
    client_auth: Literal["basic", "body"] = "body"

    @property
    def kind(self) -> str:
        return "password"

    def fields(self, now: float, refresh_token: str | None) -> dict[str, str]:
        return {"grant_type": "password", "username": self.username,
                "password": self.password.get_secret_value(), **self.client_fields()}

    def secrets(self) -> list[str]:
        return [self.password.get_secret_value(), *self.client_secrets()]

    def public_id(self) -> str:
        return f"{self.client_id}\0{self.username}"


@dataclass(frozen=True, kw_only=True)
class JwtBearer(TokenGrant):
    """A JWT signed with the client's private key exchanged for a token (RFC 7523 section
    2.1): Google's service accounts, Salesforce's JWT bearer flow. The assertion says who
    (`issuer`, `subject`), for whom (`audience`: usually the token URL), when (`iat`, `exp`
    = `now` + `lifetime`), and any `claims` the vendor adds (Google's `scope`); it is signed
    with `algorithm` (RS256 unless the vendor says otherwise) by PyJWT."""

    issuer: str
    audience: str
    private_key: SecretStr
    subject: str | None = None
    key_id: str | None = None
    algorithm: str = "RS256"
    lifetime: int = 3600
    claims: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "jwt_bearer"

    def assertion(self, now: float) -> str:
        import jwt  # PyJWT: only grants that sign need it loaded

        payload: dict[str, str | int] = {"iss": self.issuer, "aud": self.audience,
                                         "iat": int(now), "exp": int(now) + self.lifetime,
                                         **self.claims}
        if self.subject:
            payload["sub"] = self.subject
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(payload, self.private_key.get_secret_value(),
                          algorithm=self.algorithm, headers=headers)

    def fields(self, now: float, refresh_token: str | None) -> dict[str, str]:
        return {"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion(now)}

    def secrets(self) -> list[str]:
        return [self.private_key.get_secret_value()]

    def public_id(self) -> str:
        return f"{self.issuer}\0{self.subject or ''}"
