"""The outbox contract every implementation (SQLite, PostgreSQL) keeps.

Row states:   queued --lease--> leased --ack--> delivered
                 ^                 |--retry--> queued (attempts kept, next_attempt_at later)
                 |                 |--dead---> dead (reason kept)
                 +--replay-- dead  +--lease expired--> leased again by another worker

"retrying" in status means: queued with attempts > 0.

Below the contract, `OutboxBase` and the functions after it are what the two engines do the
same way: payloads are JSON text in both (see payload_json), so leasing, dead letters,
counts and the dropped-attribute tally read rows alike; each engine keeps only its SQL.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crossdock.destination import OutboxItem
from crossdock.outbox.payload_json import decode_payloads


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
    #: when the last error happened: it stays after later rows are delivered
    last_error_at: float | None = None
    dropped_attributes: int = 0
    #: when the oldest row still waiting (queued, retrying or leased) was accepted: how far
    #: behind delivery is. None when nothing waits.
    oldest_waiting_at: float | None = None


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
        """Put dead letters back in the queue with fresh attempts and a fresh age (max_age
        counts from the replay: a letter that died of old age would otherwise die again at
        its first retryable failure); returns how many."""
        ...

    def cleanup(self, delivered_before: float) -> int:
        """Forget delivered rows older than a time (their count is kept); returns how many."""
        ...

    def close(self) -> None:
        ...


# -- shared by the engines ----------------------------------------------------------------


class OutboxBase(ABC):
    """The parts of `Outbox` both engines implement the same way around their own SQL:
    `_insert` and `_write_failures`."""

    def enqueue(self, rows: Sequence[NewRow], now: float | None = None) -> int:
        """Insert rows; a (destination, message_id) already present is skipped. Returns how
        many rows were new. Joins an open `transaction()`, else runs in its own."""
        return len(self._insert(rows, now))

    def enqueue_new(
        self, rows: Sequence[NewRow], now: float | None = None
    ) -> set[tuple[str, str]]:
        """Like `enqueue`, returning the (destination, message_id) pairs that were new."""
        return set(self._insert(rows, now))

    def retry(self, id: int, next_attempt_at: float, error: str) -> None:
        """Return a leased row to the queue, due at `next_attempt_at`, keeping the error."""
        self.retry_many([(id, next_attempt_at, error)])

    def retry_many(
        self, retries: Sequence[tuple[int, float, str]], now: float | None = None
    ) -> None:
        """`retry` for many rows in one transaction: (id, next_attempt_at, error) each."""
        self._failures([(id_, error, at) for id_, at, error in retries], now)

    def dead(self, id: int, reason: str, now: float | None = None) -> None:
        """Move a row to the dead letters with its reason."""
        self.dead_many([(id, reason)], now)

    def dead_many(self, deads: Sequence[tuple[int, str]], now: float | None = None) -> None:
        """`dead` for many rows in one transaction: (id, reason) each."""
        self._failures([(id_, reason, None) for id_, reason in deads], now)

    def _failures(self, failures: list[tuple[int, str, float | None]],
                  now: float | None) -> None:
        if failures:
            self._write_failures([(id_, error_text(error), due) for id_, error, due in failures],
                                 time.time() if now is None else now)

    def _leased(self, found: Sequence[tuple[int, str, str, int, float]],
                now: float) -> list[OutboxItem]:
        """The items of rows just leased, in id order; a row whose payload is not a JSON
        object goes to the dead letters (in the lease's transaction) instead of stopping
        the worker."""
        items, broken = leased_items(found)
        if broken:
            self.dead_many(broken, now)
        return items

    @abstractmethod
    def _insert(self, rows: Sequence[NewRow], now: float | None) -> list[tuple[str, str]]:
        """Insert rows, returning the (destination, message_id) pairs that were new."""

    @abstractmethod
    def _write_failures(self, failures: Sequence[tuple[int, str, float | None]],
                        now: float) -> None:
        """In one transaction, for each (id, error, due): a leased row back to the queue due
        then, or, when due is None, any row to the dead letters; both keep the error, and
        the last one becomes its destination's last_error (outbox_stats)."""


def dropped_by_destination(
    rows: Sequence[NewRow], inserted: Iterable[tuple[str, str]]
) -> dict[str, int]:
    """Per destination, the attributes the route step dropped (a payload's `dropped`
    counts) from the rows that were new; rows already present were counted before."""
    by_key = {(r.destination, r.message_id): n for r in rows if (n := _dropped(r.payload))}
    totals: dict[str, int] = {}
    if by_key:
        for key in inserted:
            if key in by_key:
                totals[key[0]] = totals.get(key[0], 0) + by_key[key]
    return totals


def _dropped(payload: dict[str, Any]) -> int:
    dropped = payload.get("dropped")
    if not isinstance(dropped, dict):
        return 0
    return sum(v for v in dropped.values() if isinstance(v, int))


def leased_items(
    found: Sequence[tuple[int, str, str, int, float]],
) -> tuple[list[OutboxItem], list[tuple[int, str]]]:
    """Leased rows (id, message_id, payload text, attempts, created_at) as items in id order,
    and (id, reason) for each row whose payload is not a JSON object: those go to the dead
    letters instead of stopping the worker."""
    items: list[OutboxItem] = []
    broken: list[tuple[int, str]] = []
    for (id_, message_id, _, attempts, created_at), data in zip(
        found, decode_payloads([row[2] for row in found]), strict=True
    ):
        problem = _not_an_object(data)
        if problem is not None:
            broken.append((id_, f"malformed payload in the outbox: {problem}"))
            continue
        items.append(OutboxItem(id_, message_id, data, attempts, created_at))
    items.sort(key=lambda item: item.id)
    return items, broken


def _not_an_object(data: Any) -> str | None:
    if isinstance(data, ValueError):
        return str(data)
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    return None


def tally_counts(
    grouped: Iterable[tuple[str, str, int, int | None, float | None]],
    stats: Iterable[tuple[str, int, int, str | None, float | None]],
) -> dict[str, DestinationCounts]:
    """`counts()` from (destination, state, rows, rows with attempts, oldest created_at) per
    state and the outbox_stats rows (destination, delivered_forgotten, dropped_attributes,
    last_error, last_error_at)."""
    result: dict[str, DestinationCounts] = {}
    for destination, state, count, with_attempts, oldest in grouped:
        c = result.setdefault(destination, DestinationCounts())
        if state in ("queued", "leased") and oldest is not None:
            c.oldest_waiting_at = (float(oldest) if c.oldest_waiting_at is None
                                   else min(c.oldest_waiting_at, float(oldest)))
        if state == "queued":
            c.queued += count
            c.retrying += with_attempts or 0
        elif state == "leased":
            c.leased += count
        elif state == "delivered":
            c.delivered += count
        elif state == "dead":
            c.dead += count
    for destination, forgotten, dropped, last_error, last_error_at in stats:
        c = result.setdefault(destination, DestinationCounts())
        c.delivered += forgotten
        c.dropped_attributes = dropped
        c.last_error = last_error
        c.last_error_at = None if last_error_at is None else float(last_error_at)
    return result


def dead_letters_from(
    rows: Sequence[tuple[int, str, str, int, str | None, float, str]],
) -> list[DeadLetter]:
    """Dead letters from (id, destination, message_id, attempts, last_error, updated_at,
    payload text) rows. A payload that is not a JSON object is shown as {"_raw": text}."""
    letters = []
    for (id_, dest, message_id, attempts, reason, failed_at, text), data in zip(
        rows, decode_payloads([row[6] for row in rows]), strict=True
    ):
        payload = data if _not_an_object(data) is None else {"_raw": text}
        letters.append(DeadLetter(id_, dest, message_id, attempts, reason or "", failed_at,
                                  payload))
    return letters


def decoded_row(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """An outbox row as a dict, its payload decoded (the text kept when it is not JSON)."""
    data = dict(zip(names, values, strict=True))
    (payload,) = decode_payloads([data["payload"]])
    data["payload"] = data["payload"] if isinstance(payload, ValueError) else payload
    return data


def error_text(text: str) -> str:
    """An error or dead-letter reason as stored: NUL (which a PostgreSQL text column cannot
    hold, and which may come in a destination's response body or a payload value a plugin
    quotes) is written as the four characters \\x00, on both engines alike."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text
