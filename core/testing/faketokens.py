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
from typing import Any

from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState

__all__ = ["OAuthFakeState", "TokenBook"]


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


@dataclass
class OAuthFakeState(FakeState):
    """What every fake of a destination on OAuth2 keeps besides its API's state: the tokens
    its token route issued (`tokens`, a TokenBook on `clock`), how many token requests it
    answered, the statuses its token route answers next (`token_script`) and its request
    windows (`window`). A fake's dataclass extends it and calls `token_asked()` first in its
    token route."""

    clock: Callable[[], float] = time.time
    #: the token route's next answers (statuses) before it issues tokens again
    token_script: list[int] = field(default_factory=list)
    token_requests: int = 0
    _windows: dict[str, FixedWindow] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.tokens = TokenBook(self.clock)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.tokens.clear()
            self.token_requests = 0
            self.token_script.clear()
            self._windows.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap["token_requests"] = self.token_requests
        return snap

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as if its lifetime went by)."""
        self.tokens.expire_all()

    def token_asked(self) -> int | None:
        """Count a token request; the scripted status it must be answered with, if any."""
        with self._lock:
            self.token_requests += 1
            return self.token_script.pop(0) if self.token_script else None

    def window(self, name: str, limit: int, seconds: float) -> FixedWindow:
        """The fixed window `name` counts requests in (`limit` per `seconds`)."""
        with self._lock:
            return self._windows.setdefault(name, FixedWindow(limit, seconds, self.clock))
