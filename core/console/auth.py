"""Who may use the console, and the proof a browser carries of it.

- **Credentials** come from the config (`console.token`, `console.users`): a token logs in
  as the admin `token`; each user has a password and a role, `admin` or `read-only`.
- **Sessions** are a signed cookie (HMAC-SHA256), HttpOnly, SameSite=Strict, holding the
  user, the role, when it expires and a random session id. Nothing is stored server-side, so
  every daemon of a fleet accepts a session another one issued: the signing key is derived
  from the configured credentials, which the fleet shares. Changing any credential changes
  the key and so ends every session.
- **CSRF**: every POST carries a token (a form field, or the X-CSRF-Token header htmx
  sends) that is an HMAC of the session id; SameSite=Strict already keeps other sites'
  requests from carrying the cookie, the token covers browsers that do not honour it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from crossdock.config import ConsoleConfig

COOKIE = "crossdock_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: the name a token login acts under, in the action log
TOKEN_USER = "token"
ADMIN = "admin"
READ_ONLY = "read-only"


@dataclass(frozen=True, slots=True)
class User:
    """Who is logged in, and what they may do."""

    name: str
    role: str
    #: the session's random id (what the CSRF token is made from)
    session: str
    expires_at: float

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN


class Auth:
    """Checks logins, issues and reads session cookies, makes and checks CSRF tokens."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self._key = _signing_key(config)

    def login(self, name: str, password: str) -> tuple[str, str] | None:
        """(user name, role) when `name`/`password` are a configured user's, or the password
        is the console token (any or no name); None otherwise. Constant-time compares."""
        token = self.config.token
        if token is not None and _same(password, token.get_secret_value()):
            return TOKEN_USER, ADMIN
        user = self.config.users.get(name)
        # Compared even for an unknown name, so the time taken does not say which names exist.
        expected = user.password.get_secret_value() if user is not None else secrets.token_hex(16)
        if _same(password, expected) and user is not None:
            return name, user.role
        return None

    def issue(self, name: str, role: str, now: float | None = None) -> tuple[User, str]:
        """A new session for a user, and its cookie value."""
        at = time.time() if now is None else now
        user = User(name, role, secrets.token_urlsafe(16), at + self.config.session)
        body = _b64(json.dumps({"u": user.name, "r": user.role, "s": user.session,
                                "e": round(user.expires_at)}).encode())
        return user, f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None, now: float | None = None) -> User | None:
        """The user of a session cookie, or None when it is missing, forged, expired, or names
        a user (or role) the config no longer has."""
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            user = User(str(data["u"]), str(data["r"]), str(data["s"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if user.expires_at <= (time.time() if now is None else now):
            return None
        if user.name == TOKEN_USER:
            return user if self.config.token is not None else None
        configured = self.config.users.get(user.name)
        # A role lowered in the config applies to sessions already issued.
        return user if configured is not None and configured.role == user.role else None

    def csrf(self, user: User) -> str:
        """The CSRF token of a session."""
        return self._sign("csrf:" + user.session)

    def csrf_ok(self, user: User, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(user))

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())


def _signing_key(config: ConsoleConfig) -> bytes:
    """A key from every configured credential (sorted, so each daemon derives the same)."""
    material = [f"token:{config.token.get_secret_value()}" if config.token else ""]
    material += [f"user:{name}:{user.role}:{user.password.get_secret_value()}"
                 for name, user in sorted(config.users.items())]
    return hashlib.sha256(("crossdock console session v1\0" + "\0".join(material)).encode()
                          ).digest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
