"""The outbox contract every implementation (SQLite, PostgreSQL) keeps.

Row states:   queued --lease--> leased --ack--> delivered
                 ^                 |--retry--> queued (attempts kept, next_attempt_at later)
                 |                 |--dead---> dead (reason kept)
                 +--replay-- dead  +--lease expired--> leased again by another worker

"retrying" in status means: queued with attempts > 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crossdock.destination import OutboxItem


@dataclass(frozen=True, slots=True)
class NewRow:
    """A routed message for one destination, to be written to the outbox."""

    destination: str
    message_id: str
    payload: dict[str, Any]


@dataclass(slots=True)
class DestinationCounts:
    """What `crossdock status` shows for one destination."""

    queued: int = 0
    leased: int = 0
    retrying: int = 0
    delivered: int = 0
    dead: int = 0
    last_error: str | None = None
    dropped_attributes: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    destination: str
    message_id: str
    attempts: int
    reason: str
    failed_at: float
    payload: dict[str, Any] = field(default_factory=dict)


class Outbox(Protocol):
    """Durable storage of routed messages waiting for delivery."""

    url: str

    def enqueue(self, rows: Sequence[NewRow], now: float | None = None) -> int:
        """Insert rows in one transaction; a (destination, message_id) already present is
        skipped. Returns how many rows were new."""
        ...

    def lease(
        self, destination: str, limit: int, lease_seconds: float, owner: str,
        now: float | None = None,
    ) -> list[OutboxItem]:
        """Claim up to `limit` due rows of one destination: queued rows whose next attempt is
        due, and leased rows whose lease expired (their worker died). Increments attempts."""
        ...

    def ack(self, ids: Sequence[int], now: float | None = None) -> None:
        """Mark leased rows delivered."""
        ...

    def retry(self, id: int, next_attempt_at: float, error: str) -> None:
        """Return a leased row to the queue, due at `next_attempt_at`, keeping the error."""
        ...

    def dead(self, id: int, reason: str, now: float | None = None) -> None:
        """Move a row to the dead letters with its reason."""
        ...

    def next_due(self, destination: str) -> float | None:
        """When the earliest queued row of a destination is due (None: nothing queued)."""
        ...

    def counts(self) -> dict[str, DestinationCounts]:
        """Per destination: queued, leased, retrying, delivered, dead and the last error."""
        ...

    def dead_letters(self, destination: str | None = None, limit: int = 100) -> list[DeadLetter]:
        ...

    def replay(self, destination: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Put dead letters back in the queue with fresh attempts; returns how many."""
        ...

    def cleanup(self, delivered_before: float) -> int:
        """Forget delivered rows older than a time (their count is kept); returns how many."""
        ...

    def close(self) -> None:
        ...
