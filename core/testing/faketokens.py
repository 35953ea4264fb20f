"""The access tokens a contract fake's token route issues, for the fakes of destinations on
OAuth2 (Salesforce Marketing Cloud, Commerce Cloud, Google Ads): each token with its expiry
on the fake's clock, so a test steps the clock past a token's lifetime and the fake refuses
it as the vendor would, and with its issue number, so a test tells which token a request
carried (the first, or the one fetched after the first expired) without reading a secret.

    book = TokenBook(clock)
    token = book.issue(lifetime=1799)        # a new random token, live for 1799 s
    book.number(token)                       # 1: the first issued; None once expired
    book.expire_all()                        # every token so far ends now (revoked early)
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["TokenBook"]


@dataclass
class TokenBook:
    """Tokens issued so far and when each expires (safe to use from the test's thread)."""

    clock: Callable[[], float] = time.time
    _expires: dict[str, float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def issue(self, lifetime: float, prefix: str = "") -> str:
        """A new token, live for `lifetime` seconds from now on the clock; `prefix` starts it
        as the vendor's do (SFMC's are JWTs: "eyJ")."""
        token = prefix + secrets.token_urlsafe(32)
        with self._lock:
            self._expires[token] = self.clock() + lifetime
        return token

    def number(self, token: str) -> int | None:
        """The issue number of `token` (1 for the first issued) while it is live; None for a
        token never issued or expired."""
        with self._lock:
            expires = self._expires.get(token)
            if expires is None or expires <= self.clock():
                return None
            return list(self._expires).index(token) + 1

    def expire_all(self) -> None:
        """Every token issued so far expires now (revoked, or its lifetime gone by)."""
        with self._lock:
            for token in self._expires:
                self._expires[token] = 0.0

    def clear(self) -> None:
        with self._lock:
            self._expires.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expires)
