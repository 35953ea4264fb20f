"""The helpers a destination plugin needs, written once: building bodies and requests, reading
routed payloads and replies. A plugin imports them from `crossdock.destination`, which
re-exports every name here, so this module never imports the contract (no import circle).

    json_content(body)                     compact JSON bytes, the same for the same body
    json_request("POST", url, body, headers={...}, params={...})   an httpx.Request
    response_json(response)                the reply as a JSON object, or None
    basic_auth(user, password)             an Authorization header value
    secret_rate_key("acme", api_key)       a rate key sharing a limit per secret, hashed
    chunks(items, 500)                     lists of at most 500, in order
    first_value(payload, "traits.email", "identities.email")   the first value present
    dotted_paths(["traits.email"])         an options validator for the paths first_value reads
    stringify(value)                       a value as the text destinations want
    json_number(value)                     a number as JSON means it (not a bool), or None
    stringify_values(traits)               each value so, nulls left out
    truncate(text, 3000)                   at most 3,000 characters, "…" where it was cut
    sha256_hex(text), is_sha256_hex(value) hashing personal data as ad APIs take it, once
    Secret                                 a settings field: a SecretStr that is not blank
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import httpx
import orjson
from pydantic import AfterValidator, SecretStr

T = TypeVar("T")

_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_json_encode_sorted = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                       sort_keys=True).encode
# orjson writes what the lines above write, except for floats Python prints with an exponent
# (orjson: 1e16 or 0.00001 where Python has 1e+16 and 1e-05) and NaN/Infinity (orjson: null).
# Digits map to NUL and e/E to \x01 (JSON text holds neither raw), so one substring search
# finds an exponent; a regex took as long as `json` itself.
_MARK_EXPONENT = bytes.maketrans(b"0123456789eE", b"\0" * 10 + b"\1\1")
# Recent orjson (3.13) writes a large float's exponent as Python does (1e+16), so only a
# negative one can differ (1.5e-7 where Python has 1.5e-07), and its text holds "e-": the
# marking pass (a copy of the whole body) is needed only then, which is seldom.
_ONLY_NEGATIVE_EXPONENTS_DIFFER = (
    orjson.dumps([1e16, 1.2345678901234568e16, 1e300, 1.5e-7])
    == b"[1e+16,1.2345678901234568e+16,1e+300,1.5e-7]")


def json_content(body: Any, *, sort_keys: bool = False) -> bytes:
    """A JSON body as compact UTF-8 bytes (non-ASCII as is), for `httpx.Request(content=...)`:
    the same body always gives the same bytes, so a retry is the request sent before and a
    signature over them verifies.

    Always the bytes of `json.dumps(body, separators=(",", ":"), ensure_ascii=False,
    sort_keys=sort_keys).encode()`. Encoding is the largest cost of building a small request,
    so orjson writes them, and `json` takes over wherever the two could differ (an orjson error
    such as an integer beyond 64 bits, a non-string key or a lone surrogate; a number with an
    exponent or written 0.0000...; a null that stood for NaN or Infinity)."""
    try:
        out = orjson.dumps(body, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError:
        return (_json_encode_sorted if sort_keys else _json_encode)(body).encode()
    if (((not _ONLY_NEGATIVE_EXPONENTS_DIFFER or b"e-" in out)
            and b"\0\1" in out.translate(_MARK_EXPONENT))
            or b".0000" in out
            or (b"null" in out and orjson.loads(out) != body)):
        return (_json_encode_sorted if sort_keys else _json_encode)(body).encode()
    return out


def json_request(
    method: str,
    url: str | httpx.URL,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Request:
    """`httpx.Request(method, url, headers={content-type: application/json, **headers},
    content=json_content(body))`, with `params` added to the URL's query. `body` is the JSON
    value, or its bytes from `json_content` when the plugin must know them first (to sign).

    The same headers in the same order as httpx adds them (Host first, Content-Length last)
    are given at once: `content=` would make httpx look each of them up through its generic
    mapping methods and copy them twice, most of the cost of building a small request. Header names
    are best lower case; `headers` must not hold Host, Content-Length or Transfer-Encoding."""
    target = url if isinstance(url, httpx.URL) else _parsed(url)
    if params:
        target = target.copy_merge_params(dict(params))
    content = body if isinstance(body, bytes) else json_content(body)
    given = {"content-type": "application/json", **(headers or {})}
    request = httpx.Request(
        method, target,
        headers=[("Host", target.netloc.decode("ascii")), *given.items(),
                 ("Content-Length", str(len(content)))],
        stream=httpx.ByteStream(content),
    )
    request.read()  # `content` as httpx.Request(content=...) leaves it
    # httpx.Request copied the URL; the parsed one (the same object for every request to a
    # URL without params) goes back in, so the transport converts it for aiohttp once.
    request.url = target
    return request


@lru_cache(maxsize=256)
def _parsed(url: str) -> httpx.URL:
    # Parsing a URL is a large share of building a small request; a destination sends to
    # few URLs, so each is parsed once.
    return httpx.URL(url)


def response_json(response: httpx.Response) -> dict[str, Any] | None:
    """The reply's body as a JSON object, or None when it is not one: empty, not JSON (an
    HTML error page from a proxy), not UTF-8, cut short, or a list or a scalar. A plugin reads
    its API's error codes from it without a try of its own; None usually means "an answer we
    cannot read", which `classify` treats by the HTTP status alone."""
    try:
        data = response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return data if isinstance(data, dict) else None


def basic_auth(user: str, password: str) -> str:
    """An Authorization header value: `Basic base64(user:password)` (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def secret_rate_key(prefix: str, secret: str) -> str:
    """A `PlannedRequest.rate_key` for requests that share a limit per secret (an API key, a
    webhook URL): "prefix:" and a short hash, so the secret never shows in logs or status."""
    return f"{prefix}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """`items` in order, as lists of at most `size` (the last may be shorter; none empty)."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def first_value(payload: Mapping[str, Any], *paths: str) -> Any:
    """The value at the first of `paths` (dotted: "traits.email", "context.traits.email",
    "userId") that is present: not missing, not None and not a string of only spaces.
    None when no path holds one. A key that itself holds a dot cannot be named this way."""
    for path in paths:
        value: Any = payload
        for key in path.split("."):
            if not isinstance(value, Mapping):
                value = None
                break
            value = value.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        return value
    return None


_DOTTED_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


def dotted_paths(paths: list[str]) -> list[str]:
    """`paths` when each is a dotted path `first_value` reads, else ValueError naming the
    first that is not (an options model's validator:
    `field_validator("email")(dotted_paths)`)."""
    if not paths:
        raise ValueError("name at least one dotted path into the routed payload "
                         "(traits.email)")
    bad = [p for p in paths if not _DOTTED_PATH.match(p)]
    if bad:
        raise ValueError(f"dotted paths into the routed payload (traits.email): {bad[0]!r}")
    return paths


# Beyond this an integral float is written in exponent form, not as a 300-digit integer.
_PLAIN_FLOAT_LIMIT = 1e16


def json_number(value: Any) -> int | float | None:
    """`value` when it is a number a JSON API takes as one (an int or a finite float, never a
    bool, which Python counts as an int), else None: for revenue, prices, increments."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def stringify(value: Any, *, sort_keys: bool = False) -> str | None:
    """A value as the text destinations that take only strings want; None for "leave it out".

    bool -> "true"/"false"; integral numbers without ".0"; other floats in their shortest
    round-trip form; lists and objects as compact JSON (keys sorted with `sort_keys`);
    strings unchanged; null left out."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < _PLAIN_FLOAT_LIMIT:
            return str(int(value))
        return repr(value)
    try:
        return json_content(value, sort_keys=sort_keys).decode()
    except TypeError:  # a value from the Python API that JSON has no form for
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str,
                          sort_keys=sort_keys)


def stringify_values(values: Mapping[str, Any], *, sort_keys: bool = False) -> dict[str, str]:
    """Each value as `stringify` writes it, under its key (as text); nulls left out."""
    out: dict[str, str] = {}
    for key, value in values.items():
        text = stringify(value, sort_keys=sort_keys)
        if text is not None:
            out[str(key)] = text
    return out


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """`text` cut to at most `limit` characters, `ellipsis` ending it where it was cut."""
    return text if len(text) <= limit else text[:max(0, limit - len(ellipsis))] + ellipsis


_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def sha256_hex(text: str) -> str:
    """The lower-hex SHA-256 of `text`'s UTF-8: how ad platforms (Meta, Google, TikTok) take
    an email or a phone number once normalized by their rules."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sha256_hex(value: str) -> bool:
    """True for a value that already is a hex SHA-256 digest: hash it again and no one can
    match it, so it is sent as it is."""
    return bool(_SHA256_HEX.match(value))


def _not_blank(value: SecretStr) -> SecretStr:
    # The message never repeats the value: it is a secret.
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


#: a settings field holding a credential: a SecretStr (never printed, never in errors) that
#: may not be empty or only spaces
Secret = Annotated[SecretStr, AfterValidator(_not_blank)]
