"""Sessions: a message's `sessionId` opens or continues a session; a session ends `timeout`
seconds (45 minutes by default) after its last message.

A session ends either when the sweep timer finds it idle (`sweep`), or when its sessionId comes
back after the timeout (the profile batch, crossdock.profiles.batch, ends the old one and opens
a new one under the same id). Either
way the caller turns the returned rows into `session_start` / `session_end` system events.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from crossdock.outbox.locks import is_postgres

SESSION_START = "session_start"
SESSION_END = "session_end"

_COLUMNS = "id, session_id, profile_id, started_at, last_seen_at, ended_at, message_count"


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    session_id: str
    profile_id: str
    started_at: float
    last_seen_at: float
    ended_at: float | None
    message_count: int


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """`session_start` or `session_end` of one session, at `at`."""

    name: str
    session: Session
    at: float


def _session(row: tuple[object, ...]) -> Session:
    return Session(*row)  # type: ignore[arg-type]


def end_of(session: Session, now: float, timeout: float) -> SessionEvent:
    """The end of a session: at its last message plus the timeout, or now if that is
    earlier (stored by the caller)."""
    ended_at = min(session.last_seen_at + timeout, now)
    ended = Session(session.id, session.session_id, session.profile_id, session.started_at,
                    session.last_seen_at, ended_at, session.message_count)
    return SessionEvent(SESSION_END, ended, ended_at)


def end(db: Database, session: Session, now: float, timeout: float) -> SessionEvent:
    """End a session now (`end_of`) and store it."""
    event = end_of(session, now, timeout)
    db.execute("UPDATE profile_sessions SET ended_at = ? WHERE id = ?",
               [event.at, session.id])
    return event


def sweep(db: Database, now: float, timeout: float, limit: int = 1000) -> list[SessionEvent]:
    """End every open session idle for at least `timeout` seconds at `now`. On PostgreSQL a
    session a message is continuing right now is skipped (it is not idle)."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM profile_sessions WHERE ended_at IS NULL AND last_seen_at <= ? "
        "ORDER BY last_seen_at LIMIT ?" + (" FOR UPDATE SKIP LOCKED" if is_postgres(db) else ""),
        [now - timeout, limit],
    ).fetchall()
    return [end(db, _session(row), now, timeout) for row in rows]


def sessions_of(db: Database, profile_id: str) -> list[Session]:
    return [
        _session(row)
        for row in db.execute(
            f"SELECT {_COLUMNS} FROM profile_sessions WHERE profile_id = ? ORDER BY started_at",
            [profile_id],
        ).fetchall()
    ]
