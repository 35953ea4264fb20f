"""Web origins as a write key's `origins` list names them, and as a browser's Origin header
carries them (docs/sources.md).

    normalize_pattern("https://Shop.example.com:443")   # -> "https://shop.example.com"
    OriginPattern.parse("https://*.example.com").matches("https://eu.shop.example.com")  # True

A pattern is one of:

- `*`: any origin (the collector then answers `Access-Control-Allow-Origin: *`);
- an exact origin, `scheme://host[:port]`: no path, no trailing slash, the port left out when
  it is the scheme's default (browsers never send it then);
- `scheme://*.domain[:port]`: every host under `domain`, at any depth, but not `domain`
  itself (list it too if it serves pages).

The scheme is required: an origin is scheme, host and port together, and a page served over
http must not pass for the https site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANY = "*"
DEFAULT_PORTS = {"http": "80", "https": "443"}
_ORIGIN = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://"
    r"(?P<host>\[[0-9a-f:.]+\]|[^/:?#@\[\]\s]+)"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)


def _split(text: str) -> tuple[str, str, str | None] | None:
    """(scheme, host, port) of `scheme://host[:port]`, lower-cased, or None."""
    found = _ORIGIN.match(text.strip().lower())
    if found is None:
        return None
    scheme, host, port = found.group("scheme"), found.group("host"), found.group("port")
    if port is not None and port == DEFAULT_PORTS.get(scheme):
        port = None
    return scheme, host, port


def _join(scheme: str, host: str, port: str | None) -> str:
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def normalize_origin(text: str) -> str | None:
    """A browser's Origin header in the form patterns are written in, or None when it is no
    `scheme://host[:port]` (`null`, sent by sandboxed frames and file:// pages)."""
    parts = _split(text)
    return None if parts is None else _join(*parts)


def normalize_pattern(text: str) -> str:
    """The pattern in its one spelling, or ValueError saying what to write instead."""
    if text.strip() == ANY:
        return ANY
    if text.strip().lower() == "null":
        raise ValueError("'null' cannot be listed: it is the Origin of sandboxed frames and "
                         "file:// pages, which any site can make; only '*' lets them send")
    parts = _split(text)
    if parts is None:
        bare = text.strip().rstrip("/")
        if "://" not in bare:
            raise ValueError(f"{text!r} needs a scheme: write 'https://{bare}'")
        scheme, _, rest = bare.partition("://")
        if "/" in rest or "?" in rest or "#" in rest:
            host = re.split(r"[/?#]", rest, maxsplit=1)[0]
            raise ValueError(f"{text!r} is not an origin: an origin has no path, write "
                             f"'{scheme}://{host}'")
        if text.rstrip() != text.rstrip().rstrip("/"):
            raise ValueError(f"{text!r} is not an origin: no trailing slash, write "
                             f"'{bare}'")
        raise ValueError(f"{text!r} is not an origin: write scheme://host[:port], e.g. "
                         "'https://www.example.com' or 'https://*.example.com'")
    scheme, host, port = parts
    if "*" in host:
        domain = host.removeprefix("*.")
        if "*" in domain or not domain or host == domain:
            raise ValueError(f"{text!r}: '*' may only stand for the leading labels of a "
                             "host, as in 'https://*.example.com'")
        if "." not in domain:
            raise ValueError(f"{text!r}: '*.{domain}' would match every site under the "
                             f"top-level domain {domain!r}; name the site's domain")
    return _join(scheme, host, port)


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """One pattern in its normalized spelling (`normalize_pattern`), ready to match Origin
    headers. For `https://*.example.com`: scheme `https`, host suffix `.example.com`."""

    text: str
    scheme: str = ""
    host_suffix: str = ""
    port: str | None = None

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        normalized = normalize_pattern(text)
        parts = _split(normalized) if "*" in normalized and normalized != ANY else None
        if parts is None:
            return cls(normalized)
        scheme, host, port = parts
        return cls(normalized, scheme, host.removeprefix("*"), port)

    @property
    def is_any(self) -> bool:
        return self.text == ANY

    def matches(self, origin: str | None) -> bool:
        """Whether a normalized origin (`normalize_origin`; None for `null`) is allowed."""
        if self.is_any:
            return True
        if origin is None:
            return False
        if not self.host_suffix:
            return origin == self.text
        actual = _split(origin)
        return (actual is not None and actual[0] == self.scheme and actual[2] == self.port
                and actual[1].endswith(self.host_suffix))
