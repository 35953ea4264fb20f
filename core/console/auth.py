"""Who may use the console, and the proof a browser carries of it.

- **Credentials** come from the config (`console.token`, `console.users`): a token logs in
  as the admin `token`; each user has a password and a role, `admin` or `read-only`.
- **Sessions** are rows in the outbox (table `console_sessions`, migrations
  m009_console_sessions / pg_019_console_sessions), so every daemon of a fleet accepts a
  session another one issued and a logout ends it everywhere. The cookie (HttpOnly,
  SameSite=Strict) holds only a random id; the row keeps the id's SHA-256, the user, the role,
  when it was made, when it expires and when it was last used, a salted slow hash of the
  credential it logged in with, and the session's random CSRF secret. Nothing is signed, so
  no key is derived from the passwords: a cookie says nothing about them. A session ends at
  logout, when it expires, when it is idle longer than `console.idle`, and when its user's
  credential or role changes in the config.
- **CSRF**: every POST carries the session's CSRF secret (a form field, or the X-CSRF-Token
  header htmx sends); SameSite=Strict already keeps other sites' requests from carrying the
  cookie, the token covers browsers that do not honour it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from crossdock.config import ConsoleConfig
from crossdock.outbox.base import Outbox

COOKIE = "crossdock_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: the name a token login acts under, in the action log
TOKEN_USER = "token"
ADMIN = "admin"
READ_ONLY = "read-only"
#: how often a session's last use is written (not at every request)
SEEN_EVERY = 60.0
#: PBKDF2 rounds of a session's credential fingerprint: slow enough that a reader of the
#: database gains no fast oracle for the password, checked once per session per process
CREDENTIAL_ROUNDS = 50_000
SESSION_COLUMNS = ("id_hash, user_name, role, credential, csrf, created_at, expires_at, "
                   "last_seen_at")


@dataclass(frozen=True, slots=True)
class User:
    """Who is logged in, and what they may do."""

    name: str
    role: str
    #: the SHA-256 of the session's random id (its row's key)
    session: str
    #: the session's CSRF secret
    csrf: str
    expires_at: float

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN


class Auth:
    """Checks logins, issues, reads and ends sessions (rows of the outbox), checks CSRF
    tokens. Its methods other than `login` and `csrf_ok` read or write the outbox: call them
    from a thread, not the event loop."""

    def __init__(self, config: ConsoleConfig, outbox: Outbox) -> None:
        self.config = config
        self.outbox = outbox
        #: sessions whose credential fingerprint was checked against this config
        self._checked: dict[str, bool] = {}

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
        """A new session for a user (a row in the outbox), and its cookie value. Expired
        sessions are forgotten on the way."""
        at = time.time() if now is None else now
        credential = self._credential(name)
        assert credential is not None, f"issue: {name!r} is no configured user"
        cookie = secrets.token_urlsafe(32)
        user = User(name, role, _digest(cookie), secrets.token_urlsafe(32),
                    at + self.config.session)
        with self.outbox.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at <= ?",
                       [at, at - self.config.idle])
            tx.execute(f"INSERT INTO console_sessions ({SESSION_COLUMNS}) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [user.session, name, role, _fingerprint(credential), user.csrf, at,
                        user.expires_at, at])
        self._checked[user.session] = True
        return user, cookie

    def read(self, cookie: str | None, now: float | None = None) -> User | None:
        """The user of a session cookie, or None when it is missing or unknown, or its session
        expired, was idle too long, or names a user, role or credential the config no longer
        has (such a session is ended)."""
        if not cookie or len(cookie) > 200:
            return None
        at = time.time() if now is None else now
        key = _digest(cookie)
        with self.outbox.transaction() as tx:
            row = tx.execute(f"SELECT {SESSION_COLUMNS} FROM console_sessions WHERE id_hash = ?",
                             [key]).fetchone()
            if row is None:
                return None
            _, name, role, credential, csrf, _, expires_at, last_seen = row
            user = User(name, role, key, csrf, float(expires_at))
            if not self._valid(user, credential, float(last_seen), at):
                tx.execute("DELETE FROM console_sessions WHERE id_hash = ?", [key])
                self._checked.pop(key, None)
                return None
            if at - float(last_seen) >= SEEN_EVERY:
                tx.execute("UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?",
                           [at, key])
        return user

    def end(self, user: User) -> None:
        """Log out: the session's row is gone, so its cookie opens nothing anywhere."""
        with self.outbox.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE id_hash = ?", [user.session])
        self._checked.pop(user.session, None)

    def csrf(self, user: User) -> str:
        """The CSRF token of a session."""
        return user.csrf

    def csrf_ok(self, user: User, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token).encode(), user.csrf.encode())

    def _valid(self, user: User, credential: str, last_seen: float, now: float) -> bool:
        if user.expires_at <= now or last_seen <= now - self.config.idle:
            return False
        if user.name == TOKEN_USER:
            role_ok = user.role == ADMIN
        else:
            configured = self.config.users.get(user.name)
            # A role changed in the config ends the sessions issued with the old one.
            role_ok = configured is not None and configured.role == user.role
        current = self._credential(user.name)
        if not role_ok or current is None:
            return False
        checked = self._checked.get(user.session)
        if checked is None:
            if len(self._checked) > 10_000:  # sessions that ended unseen are forgotten
                self._checked.clear()
            checked = self._checked[user.session] = _fingerprint_ok(current, credential)
        return checked

    def _credential(self, name: str) -> str | None:
        """The configured secret a user logs in with (the token for the token user)."""
        if name == TOKEN_USER:
            return self.config.token.get_secret_value() if self.config.token else None
        user = self.config.users.get(name)
        return user.password.get_secret_value() if user is not None else None


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def _fingerprint(credential: str, salt: str | None = None) -> str:
    """A salted PBKDF2 of a credential: tells whether it changed since the login."""
    salt = salt or secrets.token_hex(16)
    derived = hashlib.pbkdf2_hmac("sha256", credential.encode(), bytes.fromhex(salt),
                                  CREDENTIAL_ROUNDS)
    return f"{salt}${derived.hex()}"


def _fingerprint_ok(credential: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    try:
        return hmac.compare_digest(_fingerprint(credential, salt), stored)
    except ValueError:  # not hex: not a row this code wrote
        return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
