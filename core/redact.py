"""Keeping a destination's secrets out of what people and files see: planned requests shown by
`crossdock route`, cassettes, conformance checks.

Two rules: a header or query parameter that carries credentials by its name is replaced
whole (a Basic token or a signature holds the secret only in a derived form), and every
occurrence of a settings secret's value (each `SecretStr` of the settings), as written, URL-
or JSON-escaped, is replaced wherever it stands: in a URL (a Slack webhook is one), a body
(Amplitude's api_key), a header of any name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

REDACTED = "<secret>"

#: request headers that carry credentials or signatures derived from them
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "x-api-key", "api-key",
    "access-token", "developer-token", "webhook-signature", "x-signature", "x-hub-signature",
    "x-hub-signature-256", "x-api-token",
})
#: query parameters that carry credentials
SECRET_QUERY = frozenset({"access_token", "appsecret_proof", "api_key", "apikey", "api_token",
                          "token"})


def secret_values(settings: BaseModel) -> list[str]:
    """Every secret value in a settings model (SecretStr and SecretBytes, nested models,
    lists and mappings included), longest first, so a secret holding another is replaced
    whole."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, SecretBytes):
            found.add(value.get_secret_value().decode(errors="replace"))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(settings)
    return sorted((s for s in found if s.strip()), key=len, reverse=True)


def _forms(secret: str) -> list[str]:
    """The ways a secret is written on the wire: as is, URL-quoted, JSON-escaped."""
    return list(dict.fromkeys([secret, quote(secret, safe=""), quote(secret, safe="/:"),
                               json.dumps(secret, ensure_ascii=False)[1:-1]]))


def _replacement(secret: str) -> str:
    """What stands for a secret: REDACTED, after the scheme and host of a secret that is a
    URL (a Slack webhook), so a reader still sees where a request goes."""
    parts = urlsplit(secret)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}/{REDACTED}"
    return REDACTED


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every form of every secret replaced by REDACTED."""
    for secret in secrets:
        for form in _forms(secret):
            if form and form in text:
                text = text.replace(form, _replacement(secret))
    return text


def scrub_bytes(data: bytes, secrets: Sequence[str]) -> bytes:
    """`scrub` for bytes (a body), compared as UTF-8."""
    for secret in secrets:
        for form in _forms(secret):
            encoded = form.encode()
            if encoded and encoded in data:
                data = data.replace(encoded, _replacement(secret).encode())
    return data


#: OAuth2 fields that carry credentials, in a JSON body (a token answer) or a form (a token
#: request): the access token a fake issued, a rotated refresh token, a signed assertion, the
#: password of a password grant
TOKEN_FIELDS = ("access_token", "refresh_token", "id_token", "assertion", "client_secret",
                "password")
_TOKEN_JSON = re.compile(rb'("(?:' + "|".join(TOKEN_FIELDS).encode() + rb')"\s*:\s*)"[^"]*"')
_TOKEN_FORM = re.compile(rb"(^|&)(" + "|".join(TOKEN_FIELDS).encode() + rb")=[^&]*")


def scrub_token_fields(body: bytes) -> bytes:
    """A body with the value of every OAuth2 credential field (TOKEN_FIELDS) replaced, as
    JSON (`"access_token":"<secret>"`) or as a form (`assertion=<secret>`)."""
    if not any(name.encode() in body for name in TOKEN_FIELDS):
        return body
    body = _TOKEN_JSON.sub(rb'\1"' + REDACTED.encode() + rb'"', body)
    return _TOKEN_FORM.sub(rb"\1\2=" + REDACTED.encode(), body)


def redact_headers(headers: Iterable[tuple[str, str]], secrets: Sequence[str]
                   ) -> dict[str, str]:
    """Headers as shown: credential headers replaced whole, secrets scrubbed from the rest."""
    return {name: REDACTED if name.lower() in SECRET_HEADERS else scrub(value, secrets)
            for name, value in headers}


def redact_url(url: str, secrets: Sequence[str]) -> str:
    """A URL as shown: credential query parameters replaced, secrets scrubbed."""
    base, sep, query = url.partition("?")
    if sep:
        parts = []
        for pair in query.split("&"):
            name, eq, _ = pair.partition("=")
            parts.append(f"{name}={REDACTED}" if eq and name.lower() in SECRET_QUERY else pair)
        url = base + "?" + "&".join(parts)
    return scrub(url, secrets)


def redacted_settings(settings: BaseModel) -> dict[str, Any]:
    """A settings model as shown to people (the console's destination page): every secret
    (SecretStr, SecretBytes) as REDACTED, a `headers` mapping as `redact_headers` shows it,
    and every other text with the secrets scrubbed from it (a URL holding a token)."""
    secrets = secret_values(settings)

    def show(value: Any, name: str = "") -> Any:
        if isinstance(value, SecretStr | SecretBytes):
            return REDACTED
        if isinstance(value, BaseModel):
            return {field: show(getattr(value, field), field)
                    for field in type(value).model_fields}
        if isinstance(value, Mapping):
            if name == "headers":
                return redact_headers(((str(k), str(v)) for k, v in value.items()), secrets)
            return {str(k): show(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [show(item) for item in value]
        if isinstance(value, str | int | float | bool) or value is None:
            return scrub(value, secrets) if isinstance(value, str) else value
        return scrub(str(value), secrets)  # URLs, enums, dates: as text

    shown = show(settings)
    assert isinstance(shown, dict)
    return shown
