"""One contract suite for every outbox implementation: SQLite (a file in tmp_path) and
PostgreSQL (a fresh schema per test in the `test` database on 127.0.0.1:5432).

The PostgreSQL cases skip, with the reason, only when that server cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_helpers import PG_URL, pg_unreachable

from crossdock.dedup import Dedup
from crossdock.outbox import NewRow, Outbox, open_outbox
from crossdock.outbox.base import KeptMessage, RowQuery, Settlement, StoredToken
from crossdock.outbox.pg_schema import PG_MIGRATIONS, apply_migrations, temporary_schema

T0 = 1_700_000_000.0


@dataclass
class Store:
    """One outbox store; `open()` gives a new, independent handle on it (a new connection)."""

    engine: str
    url: str
    opened: list[Outbox]

    def open(self) -> Outbox:
        outbox = open_outbox(self.url)
        self.opened.append(outbox)
        return outbox


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: list[Outbox] = []
    if request.param == "sqlite":
        yield Store("sqlite", f"sqlite:///{tmp_path / 'outbox.db'}", opened)
    else:
        reason = pg_unreachable()
        if reason:
            pytest.skip(reason)
        with temporary_schema(PG_URL) as url:
            try:
                yield Store("postgresql", url, opened)
            finally:
                for outbox in opened:
                    outbox.close()
        return
    for outbox in opened:
        outbox.close()


@pytest.fixture
def outbox(store: Store) -> Outbox:
    return store.open()


def rows(destination: str, *ids: str, **payload: Any) -> list[NewRow]:
    return [NewRow(destination, m, {"n": m, **payload}) for m in ids]


# -- enqueue ----------------------------------------------------------------------------


def test_enqueue_skips_pairs_already_present_and_says_which_were_new(outbox: Outbox) -> None:
    assert outbox.enqueue(rows("a", "m1", "m2"), now=T0) == 2
    assert outbox.enqueue(rows("a", "m2", "m3") + rows("b", "m1"), now=T0) == 2
    new = outbox.enqueue_new(rows("a", "m3", "m4", "m4"), now=T0)  # type: ignore[attr-defined]
    assert new == {("a", "m4")}
    counts = outbox.counts()
    assert (counts["a"].queued, counts["b"].queued) == (4, 1)


def test_dropped_attributes_are_counted_once_per_new_row(outbox: Outbox) -> None:
    payload = {"dropped": {"too_long": 2, "reserved": 1}}
    outbox.enqueue([NewRow("a", "m1", payload), NewRow("a", "m2", {})], now=T0)
    outbox.enqueue([NewRow("a", "m1", payload)], now=T0)
    assert outbox.counts()["a"].dropped_attributes == 3


def test_a_transaction_rolls_back_everything_written_in_it(outbox: Outbox) -> None:
    transaction = outbox.transaction  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), transaction():
        outbox.enqueue(rows("a", "m1"), now=T0)
        with transaction():  # nested use joins the outer transaction
            outbox.enqueue(rows("a", "m2"), now=T0)
        raise RuntimeError("accept failed half way")
    assert outbox.counts() == {}
    with transaction():
        outbox.enqueue(rows("a", "m1"), now=T0)
    assert outbox.counts()["a"].queued == 1


def test_dedup_keys_commit_with_the_transaction_that_wrote_them(outbox: Outbox) -> None:
    # The collector's x-request-id dedup: crossdock.dedup.Dedup on the transaction handle.
    db = getattr(outbox, "db", None)
    if db is not None:
        Dedup.migrate(db)
    dedup = Dedup(window=100.0)
    transaction = outbox.transaction  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), transaction() as tx:
        assert dedup.check_and_remember(tx, "r:key:1", T0) is False
        raise RuntimeError("rolled back")
    with transaction() as tx:
        assert dedup.check_and_remember(tx, "r:key:1", T0) is False
    with transaction() as tx:
        assert dedup.check_and_remember(tx, "r:key:1", T0 + 50) is True
        assert dedup.seen(tx, "r:key:1", T0 + 100) is False
        assert dedup.purge(tx, T0 + 100) == 1


# -- lease and the fates of a leased row ------------------------------------------------


def test_lease_takes_due_rows_oldest_first_and_counts_attempts(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1"), now=T0)
    outbox.enqueue(rows("a", "m2", "m3"), now=T0 + 1)
    outbox.enqueue(rows("b", "x1"), now=T0)
    assert outbox.lease("a", 5, 30, "w1", now=T0 - 1) == []  # nothing due yet
    items = outbox.lease("a", 2, 30, "w1", now=T0 + 1)
    assert [i.message_id for i in items] == ["m1", "m2"]
    assert all(i.attempts == 1 for i in items)
    assert items[0].payload == {"n": "m1"}
    assert [i.message_id for i in outbox.lease("a", 5, 30, "w1", now=T0 + 1)] == ["m3"]
    assert outbox.lease("a", 5, 30, "w1", now=T0 + 1) == []
    counts = outbox.counts()
    assert (counts["a"].leased, counts["a"].queued, counts["b"].queued) == (3, 0, 1)


def test_ack_retry_dead_replay_and_counts(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2", "m3"), now=T0)
    m1, m2, m3 = outbox.lease("a", 3, 30, "w1", now=T0)
    outbox.ack([m1.id], "w1", now=T0 + 1)
    outbox.retry(m2.id, T0 + 60, "503 from the destination", "w1")
    outbox.dead(m3.id, "400: bad email", "w1", now=T0 + 2)
    c = outbox.counts()["a"]
    assert (c.queued, c.retrying, c.leased, c.delivered, c.dead) == (1, 1, 0, 1, 1)
    assert c.last_error == "400: bad email"
    assert outbox.next_due("a") == T0 + 60
    assert outbox.lease("a", 5, 30, "w1", now=T0 + 59) == []
    (again,) = outbox.lease("a", 5, 30, "w1", now=T0 + 60)
    assert (again.message_id, again.attempts) == ("m2", 2)

    (letter,) = outbox.dead_letters("a")
    assert (letter.message_id, letter.reason, letter.attempts) == ("m3", "400: bad email", 1)
    assert letter.payload == {"n": "m3"}
    assert outbox.dead_letters("other") == []
    assert outbox.replay("a") == 1
    assert outbox.dead_letters() == []
    (replayed,) = [i for i in outbox.lease("a", 5, 30, "w1") if i.message_id == "m3"]
    assert replayed.attempts == 1  # fresh attempts


def test_counts_say_since_when_the_oldest_waiting_row_waits(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1"), now=T0)
    outbox.enqueue(rows("a", "m2", "m3"), now=T0 + 5)
    outbox.enqueue(rows("b", "m1"), now=T0 + 7)
    assert outbox.counts()["a"].oldest_waiting_at == T0
    (m1,) = outbox.lease("a", 1, 30, "w1", now=T0 + 10)
    assert outbox.counts()["a"].oldest_waiting_at == T0  # leased still waits
    outbox.ack([m1.id], "w1", now=T0 + 11)
    assert outbox.counts()["a"].oldest_waiting_at == T0 + 5
    m2, m3 = outbox.lease("a", 2, 30, "w1", now=T0 + 12)
    outbox.retry(m2.id, T0 + 60, "503", "w1")  # retrying still waits
    outbox.dead(m3.id, "400", "w1", now=T0 + 12)
    assert outbox.counts()["a"].oldest_waiting_at == T0 + 5
    (again,) = outbox.lease("a", 1, 30, "w1", now=T0 + 60)
    outbox.ack([again.id], "w1", now=T0 + 61)
    counts = outbox.counts()
    assert counts["a"].oldest_waiting_at is None  # dead letters do not wait
    assert counts["b"].oldest_waiting_at == T0 + 7


def test_a_replayed_letter_starts_a_fresh_age(outbox: Outbox) -> None:
    # max_age counts from created_at: a letter that died of old age, replayed with its
    # first age, would die again at its first retryable failure.
    outbox.enqueue(rows("a", "m1"), now=T0)
    (item,) = outbox.lease("a", 1, 30, "w1", now=T0)
    outbox.dead(item.id, "gave up after 259300s (max_age 259200s)", "w1", now=T0 + 259300)
    before = time.time()
    assert outbox.replay("a") == 1
    (again,) = outbox.lease("a", 1, 30, "w1")
    assert again.created_at >= before and again.attempts == 1


def test_replay_by_ids_and_dead_letters_newest_first(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2", "m3"), now=T0)
    items = outbox.lease("a", 3, 30, "w1", now=T0)
    for offset, item in enumerate(items):
        outbox.dead(item.id, f"reason {item.message_id}", "w1", now=T0 + offset)
    assert [d.message_id for d in outbox.dead_letters(limit=2)] == ["m3", "m2"]
    assert outbox.replay(ids=[items[0].id]) == 1
    assert sorted(d.message_id for d in outbox.dead_letters()) == ["m2", "m3"]
    assert outbox.counts()["a"].queued == 1


def test_ack_of_a_row_not_leased_changes_nothing(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1"), now=T0)
    (item,) = outbox.lease("a", 1, 30, "w1", now=T0)
    outbox.retry(item.id, T0 + 10, "timeout", "w1")
    outbox.ack([item.id], "w1", now=T0 + 1)  # too late: the row went back to the queue
    c = outbox.counts()["a"]
    assert (c.queued, c.delivered) == (1, 0)


def test_cleanup_forgets_delivered_rows_but_keeps_their_count(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2", "m3"), now=T0)
    m1, m2, _ = outbox.lease("a", 3, 30, "w1", now=T0)
    outbox.ack([m1.id], "w1", now=T0 + 1)
    outbox.ack([m2.id], "w1", now=T0 + 100)
    assert outbox.cleanup(T0 + 50) == 1
    assert outbox.cleanup(T0 + 50) == 0
    c = outbox.counts()["a"]
    assert (c.delivered, c.leased) == (2, 1)
    assert outbox.row("a", "m1") is None  # type: ignore[attr-defined]
    assert outbox.row("a", "m2")["state"] == "delivered"  # type: ignore[attr-defined]


def test_cleanup_forgets_token_rows_nobody_refreshed(outbox: Outbox) -> None:
    # a grant whose secrets changed leaves its old row (keyed by those secrets) behind
    outbox.swap_token(StoredToken("old"), StoredToken("old", b"x", expires_at=T0 + 10), now=T0)
    outbox.swap_token(StoredToken("live"), StoredToken("live", b"y", expires_at=T0 + 3600),
                      now=T0 + 90)
    outbox.cleanup(T0 + 100)
    assert outbox.stored_token("old").version == 0  # gone: expired, untouched since
    assert outbox.stored_token("live").version == 1  # still valid: kept
    outbox.cleanup(T0 + 5000)
    assert outbox.stored_token("live").version == 0


def test_an_expired_lease_is_taken_over_by_a_second_owner(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1"), now=T0)
    (first,) = outbox.lease("a", 1, 10, "dead-daemon", now=T0)
    assert outbox.lease("a", 1, 10, "w2", now=T0 + 9) == []  # still a live lease
    assert outbox.next_due("a") == T0 + 10
    (taken,) = outbox.lease("a", 1, 10, "w2", now=T0 + 10)
    assert (taken.id, taken.attempts) == (first.id, 2)
    assert outbox.row("a", "m1")["lease_owner"] == "w2"  # type: ignore[attr-defined]
    outbox.ack([taken.id], "w2", now=T0 + 11)
    assert outbox.counts()["a"].delivered == 1


def test_release_gives_a_lease_back_without_counting_the_attempt(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1"), now=T0)
    (item,) = outbox.lease("a", 1, 30, "w1", now=T0)
    outbox.release([item.id], "w1", now=T0 + 1)
    (again,) = outbox.lease("a", 1, 30, "w2", now=T0 + 1)
    assert again.attempts == 1


def test_a_payload_that_is_not_an_object_becomes_a_dead_letter(store: Store) -> None:
    outbox = store.open()
    outbox.enqueue(rows("a", "good", "bad"), now=T0)
    with outbox.transaction() as tx:  # type: ignore[attr-defined]
        tx.execute("UPDATE outbox SET payload = ? WHERE message_id = 'bad'", ["[1, 2]"])
    (item,) = outbox.lease("a", 5, 30, "w1", now=T0)
    assert item.message_id == "good"
    (letter,) = outbox.dead_letters()
    assert letter.message_id == "bad"
    assert "not an object" in letter.reason


# -- lease owners: a stale worker changes nothing ----------------------------------------


def settle_as(outbox: Outbox, how: str, id_: int, owner: str, now: float) -> int:
    if how == "ack":
        return outbox.ack([id_], owner, now=now)
    if how == "retry":
        return outbox.retry(id_, now + 60, "HTTP 503: stale", owner, now=now)
    if how == "dead":
        return outbox.dead(id_, "HTTP 400: stale", owner, now=now)
    return outbox.release([id_], owner, now=now)


@pytest.mark.parametrize("how", ["ack", "retry", "dead", "release"])
def test_a_stale_owner_changes_nothing_of_a_row_another_owner_took_over(
    outbox: Outbox, how: str,
) -> None:
    # w1's lease expired (it was slow, not dead) and w2 took the row over: whatever w1
    # learns about its old attempt, the row is w2's, and once w2 delivered it, delivered.
    outbox.enqueue(rows("a", "m1"), now=T0)
    (stale,) = outbox.lease("a", 1, 10, "w1#1", now=T0)
    (taken,) = outbox.lease("a", 1, 10, "w2#1", now=T0 + 10)
    assert settle_as(outbox, how, stale.id, "w1#1", T0 + 11) == 0
    row = outbox.row("a", "m1")  # type: ignore[attr-defined]
    assert (row["state"], row["lease_owner"], row["attempts"]) == ("leased", "w2#1", 2)
    assert outbox.ack([taken.id], "w2#1", now=T0 + 12) == 1
    assert settle_as(outbox, how, stale.id, "w1#1", T0 + 13) == 0
    row = outbox.row("a", "m1")  # type: ignore[attr-defined]
    assert (row["state"], row["last_error"]) == ("delivered", None)
    c = outbox.counts()["a"]
    assert (c.delivered, c.dead, c.queued, c.last_error) == (1, 0, 0, None)


def test_one_settlement_changes_only_the_rows_its_owner_still_holds(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2", "m3", "m4"), now=T0)
    mine = outbox.lease("a", 4, 10, "w1#1", now=T0)
    (theirs,) = outbox.lease("a", 1, 10, "w2#1", now=T0 + 10)  # m1, expired, taken over
    settlement = Settlement(acks=[mine[0].id, mine[1].id],
                            retries=[(mine[2].id, T0 + 60, "HTTP 500")],
                            deads=[(mine[3].id, "HTTP 400")])
    assert outbox.settle("w1#1", settlement, now=T0 + 11) == 3
    states = {m: outbox.row("a", m)["state"]  # type: ignore[attr-defined]
              for m in ("m1", "m2", "m3", "m4")}
    assert states == {"m1": "leased", "m2": "delivered", "m3": "queued", "m4": "dead"}
    assert theirs.message_id == "m1"
    assert outbox.counts()["a"].last_error == "HTTP 400"


def test_extend_keeps_a_live_lease_and_says_which_rows_are_gone(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2"), now=T0)
    a, b = outbox.lease("a", 2, 10, "w1#1", now=T0)
    assert outbox.extend([a.id, b.id], "w1#1", 10, now=T0 + 8) == {a.id, b.id}
    assert outbox.lease("a", 5, 10, "w2#1", now=T0 + 12) == []  # alive until T0 + 18
    assert outbox.next_due("a") == T0 + 18
    assert outbox.extend([a.id], "w2#1", 10, now=T0 + 13) == set()  # not w2's to extend
    assert len(outbox.lease("a", 5, 10, "w2#1", now=T0 + 18)) == 2
    assert outbox.extend([a.id, b.id], "w1#1", 10, now=T0 + 19) == set()


# -- one person's rows in order ---------------------------------------------------------


def person_rows(destination: str, *pairs: tuple[str, str | None]) -> list[NewRow]:
    return [NewRow(destination, m, {"n": m}, person) for m, person in pairs]


def test_an_ordered_lease_holds_a_persons_later_rows_behind_the_earliest(
    outbox: Outbox,
) -> None:
    outbox.enqueue(person_rows("a", ("m1", "p1"), ("m2", "p2"), ("m3", "p1"), ("m4", None),
                               ("m5", None), ("m6", "p1")), now=T0)
    first = outbox.lease("a", 10, 30, "w1#1", now=T0)
    assert [i.message_id for i in first] == ["m1", "m2", "m4", "m5"]
    assert outbox.lease("a", 10, 30, "w1#2", now=T0) == []  # m3 waits while m1 is leased
    m1 = first[0]
    outbox.retry(m1.id, T0 + 60, "HTTP 503", "w1#1", now=T0 + 1)
    outbox.ack([i.id for i in first[1:]], "w1#1", now=T0 + 1)
    assert outbox.lease("a", 10, 30, "w1#3", now=T0 + 2) == []  # ... and while it retries
    (again,) = outbox.lease("a", 10, 30, "w1#4", now=T0 + 60)
    assert again.message_id == "m1"
    outbox.ack([again.id], "w1#4", now=T0 + 61)
    (m3,) = outbox.lease("a", 10, 30, "w1#5", now=T0 + 61)
    assert m3.message_id == "m3"
    outbox.dead(m3.id, "HTTP 400", "w1#5", now=T0 + 62)  # a dead letter lets m6 go
    assert [i.message_id for i in outbox.lease("a", 10, 30, "w1#6", now=T0 + 62)] == ["m6"]


def test_an_unordered_lease_takes_every_due_row(outbox: Outbox) -> None:
    outbox.enqueue(person_rows("a", ("m1", "p1"), ("m2", "p1"), ("m3", "p1")), now=T0)
    outbox.enqueue(person_rows("b", ("m1", "p1")), now=T0)  # another destination's row
    (b1,) = outbox.lease("b", 10, 30, "w1#1", now=T0)
    got = outbox.lease("a", 10, 30, "w1#2", now=T0, ordered=False)
    assert [i.message_id for i in got] == ["m1", "m2", "m3"]
    assert b1.message_id == "m1"  # each destination keeps its own order


def test_ordered_leases_from_many_threads_never_overtake_a_person(store: Store) -> None:
    # Six handles lease (ordered), then ack or retry due at once, at random: each person's
    # deliveries must come in the order the rows were written, and no two rows of one
    # person may be leased at the same time, on either engine.
    people = [f"p{n}" for n in range(30)]
    store.open().enqueue([NewRow("a", f"m{i:03d}", {"i": i}, people[i % len(people)])
                          for i in range(300)], now=T0)
    handles = [store.open() for _ in range(6)]
    guard = threading.Lock()
    holding: dict[str, str] = {}
    delivered: dict[str, list[int]] = {p: [] for p in people}
    problems: list[str] = []
    start = threading.Barrier(len(handles))

    def work(index: int) -> None:
        outbox, rng, n = handles[index], random.Random(index), 0
        try:
            start.wait()
            idle = 0
            while idle < 3:
                n += 1
                token = f"t{index}#{n}"
                items = outbox.lease("a", 5, 600, token, now=T0 + 1)
                idle = 0 if items else idle + 1
                with guard:
                    for item in items:
                        person = people[item.payload["i"] % len(people)]
                        if person in holding:
                            problems.append(f"{person}: {item.message_id} leased while "
                                            f"{holding[person]} was")
                        holding[person] = item.message_id
                for item in items:
                    person = people[item.payload["i"] % len(people)]
                    deliver = rng.random() >= 0.3
                    with guard:  # before the settle commits: a next row may go after it
                        del holding[person]
                        if deliver:
                            delivered[person].append(item.payload["i"])
                    if deliver:
                        outbox.ack([item.id], token, now=T0 + 1)
                    else:
                        outbox.retry(item.id, T0, "HTTP 503", token, now=T0 + 1)
        except BaseException as exc:  # surfaced below
            problems.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert all(order == sorted(order) for order in delivered.values()), delivered
    assert sum(len(order) for order in delivered.values()) == 300


# -- circuits ---------------------------------------------------------------------------


def test_a_circuit_changes_only_from_the_version_its_writer_read(store: Store) -> None:
    one, two = store.open(), store.open()
    never = one.circuit("a")
    assert (never.state, never.version, never.failures) == ("closed", 0, 0)
    assert one.swap_circuit(never, replace(never, failures=1), now=T0)
    assert not two.swap_circuit(never, replace(never, failures=9), now=T0)  # read too early
    seen = two.circuit("a")
    assert (seen.failures, seen.version) == (1, 1)
    opened = replace(seen, state="open", failures=5, opened_at=T0, next_probe_at=T0 + 10,
                     last_error="connection refused")
    assert two.swap_circuit(seen, opened, now=T0)
    assert not one.swap_circuit(seen, replace(seen, failures=0), now=T0)
    assert one.circuit("a") == replace(opened, version=2)
    c = one.counts()["a"]
    assert (c.circuit, c.circuit_failures, c.circuit_opened_at, c.circuit_next_probe_at) == (
        "open", 5, T0, T0 + 10)


# -- shared OAuth2 tokens ---------------------------------------------------------------


def test_a_shared_token_row_changes_only_from_the_version_its_writer_read(store: Store) -> None:
    one, two = store.open(), store.open()
    never = one.stored_token("k")
    assert never == StoredToken("k")
    claim = StoredToken("k", fetching_until=T0 + 30)
    assert one.swap_token(never, claim, now=T0)
    assert not two.swap_token(never, claim, now=T0)  # two daemons claim: one wins
    claimed = two.stored_token("k")
    assert (claimed.version, claimed.fetching_until, claimed.sealed) == (1, T0 + 30, None)
    sealed = StoredToken("k", b"\x00sealed\xff", T0 + 1200, None)
    assert one.swap_token(claimed, sealed, now=T0)
    assert not two.swap_token(claimed, StoredToken("k"), now=T0)
    assert two.stored_token("k") == StoredToken("k", b"\x00sealed\xff", T0 + 1200, None, 2)


# -- schema -----------------------------------------------------------------------------


def test_reopening_applies_nothing_and_keeps_queued_rows(store: Store) -> None:
    first = store.open()
    assert first.migrated  # type: ignore[attr-defined]
    first.enqueue(rows("a", "m1", "m2"), now=T0)
    first.close()
    again = store.open()
    assert again.migrated == []  # type: ignore[attr-defined]
    assert [i.message_id for i in again.lease("a", 5, 30, "w1", now=T0)] == ["m1", "m2"]


@pytest.mark.postgres
def test_postgres_upgrade_from_an_older_schema_keeps_queued_rows(pg_server: str) -> None:
    with temporary_schema(pg_server) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            assert apply_migrations(conn, PG_MIGRATIONS[:1]) == ["pg_001_initial"]
            conn.execute(
                "INSERT INTO outbox (destination, message_id, payload, next_attempt_at, "
                "created_at, updated_at) VALUES ('a', 'old', '{\"v\": 1}', %s, %s, %s)",
                [T0, T0, T0])
        outbox = open_outbox(url)
        try:
            later = [fn.__name__ for fn in PG_MIGRATIONS[1:]]
            assert outbox.migrated == later  # type: ignore[attr-defined]
            (item,) = outbox.lease("a", 5, 30, "w1", now=T0)
            assert (item.message_id, item.payload) == ("old", {"v": 1})
        finally:
            outbox.close()


# -- many leasers at once ---------------------------------------------------------------


def _fill(outbox: Outbox, destinations: list[str], count: int) -> None:
    for destination in destinations:
        outbox.enqueue([NewRow(destination, f"m{i}", {"i": i}) for i in range(count)], now=T0)
    counts = outbox.counts()
    assert sum(c.queued for c in counts.values()) == count * len(destinations)


def test_threads_leasing_at_once_never_share_a_row(store: Store) -> None:
    destinations = ["a", "b"]
    _fill(store.open(), destinations, 600)
    handles = [store.open() for _ in range(6)]
    leased: list[list[tuple[str, int]]] = [[] for _ in handles]
    errors: list[BaseException] = []
    start = threading.Barrier(len(handles))

    def work(index: int) -> None:
        outbox = handles[index]
        try:
            start.wait()
            idle = 0
            while idle < 2:
                got = 0
                for destination in destinations:
                    items = outbox.lease(destination, 7, 600, f"t{index}", now=T0 + 1)
                    leased[index] += [(destination, item.id) for item in items]
                    got += len(items)
                idle = 0 if got else idle + 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [key for keys in leased for key in keys]
    # (Which threads got rows is up to the scheduler and SQLite's busy handler: a thread may
    # take them all. The processes test below checks the same with real parallelism.)
    assert len(every) == len(set(every)) == 1200


_LEASER = r"""
import json, sys
from crossdock.outbox import open_outbox
url, owner, count_file = sys.argv[1], sys.argv[2], sys.argv[3]
outbox = open_outbox(url)
ids = []
open(count_file, "w").close()  # ready
idle = 0
while idle < 3:
    items = outbox.lease("a", 5, 600, owner, now=1_700_000_001.0)
    ids += [item.id for item in items]
    if items:
        outbox.ack([item.id for item in items[::2]], owner)  # settle some while others lease
    idle = 0 if items else idle + 1
print(json.dumps(ids))
outbox.close()
"""


def test_processes_leasing_at_once_never_share_a_row(store: Store, tmp_path: Path) -> None:
    _fill(store.open(), ["a"], 1500)
    procs = [
        subprocess.Popen([sys.executable, "-c", _LEASER, store.url, f"p{i}",
                          str(tmp_path / f"ready{i}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    results: list[list[int]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    every = [id_ for ids in results for id_ in ids]
    assert len(every) == len(set(every)) == 1500
    c = store.open().counts()["a"]
    assert c.delivered + c.leased == 1500
    assert c.queued == 0


# -- waking other daemons (PostgreSQL) --------------------------------------------------


@pytest.mark.postgres
async def test_enqueue_notifies_listeners_after_commit_only(pg_server: str) -> None:
    with temporary_schema(pg_server) as url:
        listener = open_outbox(url)
        writer = open_outbox(url)
        heard: list[str] = []
        arrived = asyncio.Event()

        def on_rows(destination: str) -> None:
            heard.append(destination)
            arrived.set()

        ready = asyncio.Event()
        task = asyncio.create_task(listener.listen(on_rows, ready=ready))  # type: ignore[attr-defined]
        try:
            await asyncio.wait_for(ready.wait(), 10)
            with pytest.raises(RuntimeError), writer.transaction():  # type: ignore[attr-defined]
                writer.enqueue(rows("rolled-back", "m1"), now=T0)
                raise RuntimeError("no commit, no notification")
            writer.enqueue(rows("a", "m1") + rows("b", "m1"), now=T0)
            writer.enqueue(rows("a", "m1"), now=T0)  # nothing new: no notification
            writer.enqueue(rows("c", "m1"), now=T0)
            # Notifications arrive in commit order: once "c" is heard, anything the
            # rolled-back or the no-op enqueue sent would have arrived before it.
            await asyncio.wait_for(arrived.wait(), 10)
            await _settle(lambda: "c" in heard)
            assert sorted(heard[:2]) == ["a", "b"]
            assert heard[2:] == ["c"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            listener.close()
            writer.close()


async def test_outboxes_in_other_schemas_of_the_database_do_not_wake_each_other(
    pg_server: str,
) -> None:
    with temporary_schema(pg_server) as url_a, temporary_schema(pg_server) as url_b:
        listener, other, writer = open_outbox(url_a), open_outbox(url_b), open_outbox(url_a)
        heard: list[str] = []
        ready = asyncio.Event()
        task = asyncio.create_task(listener.listen(heard.append, ready=ready))  # type: ignore[attr-defined]
        try:
            await asyncio.wait_for(ready.wait(), 10)
            other.enqueue(rows("elsewhere", "m1"), now=T0)
            writer.enqueue(rows("here", "m1"), now=T0)
            # Commit order: once "here" is heard, "elsewhere" would have arrived before it.
            await _settle(lambda: "here" in heard)
            assert heard == ["here"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for box in (listener, other, writer):
                box.close()


async def _settle(done: Callable[[], bool], tries: int = 200) -> None:
    for _ in range(tries):
        if done():
            return
        await asyncio.sleep(0.02)


# -- the pipeline's one-transaction accept ----------------------------------------------


def test_the_pipeline_accepts_in_one_transaction_on_either_engine(
    outbox: Outbox, make_loaded: Callable[..., Any], route: Any,
) -> None:
    from crossdock.pipeline import Pipeline

    woken: list[set[str]] = []
    loaded = make_loaded("http://127.0.0.1:9/hook")
    pipeline = Pipeline(loaded, outbox, router=route, on_commit=woken.append)
    track = [{"type": "track", "event": "E", "userId": "u1", "messageId": m}
             for m in ("m1", "m2")]
    result = pipeline.accept(track)
    assert (result.accepted, result.rows, woken) == (["m1", "m2"], 2, [{"echo"}])
    again = pipeline.accept(track)
    assert (again.accepted, again.duplicates, again.rows) == ([], ["m1", "m2"], 0)

    def breaks_on_m4(enriched: Any, destination: Any) -> Any:
        if enriched.message["messageId"] == "m4":
            raise RuntimeError("router crashed")
        return route(enriched, destination)

    broken = Pipeline(loaded, outbox, router=breaks_on_m4)
    with pytest.raises(RuntimeError):
        broken.accept([{**track[0], "messageId": "m3"}, {**track[0], "messageId": "m4"}])
    assert outbox.row("echo", "m3") is None  # type: ignore[attr-defined]
    assert outbox.counts()["echo"].queued == 2


# -- kept batches (file exports) --------------------------------------------------------


def test_waiting_counts_due_rows_their_bytes_and_the_oldest(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1"), now=T0)
    outbox.enqueue(rows("a", "m2", "m3", text="é"), now=T0 + 5)
    outbox.enqueue(rows("b", "x1"), now=T0)
    assert outbox.waiting("a", 100, now=T0 - 1).rows == 0
    everything = outbox.waiting("a", 100, now=T0 + 5)
    assert (everything.rows, everything.oldest_created_at) == (3, T0)
    sizes = [len(json.dumps(r.payload, ensure_ascii=False).encode()) for r in
             rows("a", "m1") + rows("a", "m2", "m3", text="é")]
    # as stored: each engine's JSON text, within a few bytes of spaces of json.dumps's
    assert sum(sizes) - 12 <= everything.bytes <= sum(sizes)
    assert outbox.waiting("a", 2, now=T0 + 5).rows == 2  # counted up to the limit
    outbox.lease("a", 3, 30, "w1", now=T0 + 5)
    assert outbox.waiting("a", 100, now=T0 + 5).rows == 0  # leased: not waiting
    assert outbox.waiting("a", 100, now=T0 + 40).rows == 3  # the lease expired


def test_a_kept_batch_is_leased_again_whole_and_alone(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2", "m3", "m4"), now=T0)
    first = outbox.lease("a", 3, 30, "w1", now=T0)
    assert outbox.keep_together([i.id for i in first], "w1", "file-1") == 3
    assert outbox.keep_together([first[0].id], "w2", "file-2") == 0  # not w2's
    assert outbox.lease_batch("a", 30, "w2", now=T0 + 1) == []  # held by w1
    # the send failed: each row retried at its own time, the last one later than the rest
    outbox.settle("w1", Settlement(retries=[(first[0].id, T0 + 10, "down"),
                                            (first[1].id, T0 + 10, "down"),
                                            (first[2].id, T0 + 99, "down")]), now=T0 + 1)
    assert outbox.lease_batch("a", 30, "w2", now=T0 + 5) == []  # none due yet
    again = outbox.lease_batch("a", 30, "w2", now=T0 + 10)
    assert [i.message_id for i in again] == ["m1", "m2", "m3"]  # whole, m4 not with it
    assert all(i.attempts == 2 for i in again)
    # the worker died: its leases expire and the batch is taken whole once more
    assert outbox.lease_batch("a", 30, "w3", now=T0 + 20) == []
    taken = outbox.lease_batch("a", 30, "w3", now=T0 + 41)
    assert [i.message_id for i in taken] == ["m1", "m2", "m3"]
    outbox.ack([i.id for i in taken], "w3", now=T0 + 42)
    assert outbox.lease_batch("a", 30, "w4", now=T0 + 100) == []  # delivered: done
    assert [i.message_id for i in outbox.lease("a", 5, 30, "w4", now=T0 + 100)] == ["m4"]


def test_a_kept_batch_due_first_goes_first_and_other_destinations_keep_theirs(
        outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2"), now=T0)
    outbox.enqueue(rows("b", "x1"), now=T0)
    one = outbox.lease("a", 1, 30, "w1", now=T0)
    two = outbox.lease("a", 1, 30, "w2", now=T0 + 1)
    other = outbox.lease("b", 1, 30, "w3", now=T0)
    outbox.keep_together([one[0].id], "w1", "k1")
    outbox.keep_together([two[0].id], "w2", "k2")
    outbox.keep_together([other[0].id], "w3", "k1")  # the same key elsewhere
    assert [i.message_id for i in outbox.lease_batch("a", 30, "w9", now=T0 + 40)] == ["m1"]
    assert [i.message_id for i in outbox.lease_batch("a", 30, "w9", now=T0 + 40)] == ["m2"]
    assert [i.message_id for i in outbox.lease_batch("b", 30, "w9", now=T0 + 40)] == ["x1"]


# -- schema (the ops listener's /readyz) -------------------------------------------------


def test_schema_problems_name_a_missing_and_a_newer_migration(store: Store) -> None:
    outbox = store.open()
    assert outbox.schema_problems() == []
    first, own = ("pg_001_initial", "pg_") if store.engine == "postgresql" else (
        "m001_initial", "m")
    sql = ("DELETE FROM _crossdock_migrations WHERE name = {p}; "
           "INSERT INTO _crossdock_migrations (name, applied_at) VALUES ({p}, 0)")
    with outbox.transaction() as tx:  # type: ignore[attr-defined]
        for statement, value in zip(sql.split("; "), [first, f"{own}999_later"], strict=True):
            if store.engine == "postgresql":
                tx.conn.execute(statement.format(p="%s"), [value])
            else:
                tx.execute(statement.format(p="?"), [value])
    assert outbox.schema_problems() == [
        f"migration {first} not applied",
        f"migration {own}999_later applied by a newer Crossdock"]


def test_fast_counts_migration_counts_the_rows_already_there(store: Store) -> None:
    # An outbox from before m008 / pg_018 (the counts' indexes and the delivered tally):
    # made by taking them away again; the upgrade on the next open must give the same counts.
    outbox = store.open()
    outbox.enqueue(rows("a", "m1", "m2", "m3", "m4") + rows("b", "m5"), now=T0)
    m1, m2, m3, m4 = outbox.lease("a", 4, 30, "w1", now=T0)
    outbox.settle("w1", Settlement(acks=[m1.id, m2.id], retries=[(m3.id, T0 + 60, "503")],
                                   deads=[(m4.id, "400")]), T0 + 1)
    assert outbox.cleanup(T0 + 2) == 2
    outbox.enqueue(rows("a", "m6"), now=T0 + 3)
    (m6,) = outbox.lease("a", 1, 30, "w1", now=T0 + 3)
    outbox.ack([m6.id], "w1", now=T0 + 4)
    before = outbox.counts()
    assert (before["a"].delivered, before["a"].retrying, before["a"].dead,
            before["b"].queued) == (3, 1, 1, 1)
    name = "pg_018_fast_counts" if store.engine == "postgresql" else "m008_fast_counts"
    undo = [*(f"DROP INDEX outbox_{index}" for index in
              ("waiting", "retrying", "dead_recent", "dead")),
            "ALTER TABLE outbox_stats DROP COLUMN delivered",
            f"DELETE FROM _crossdock_migrations WHERE name = '{name}'"]
    with outbox.transaction() as tx:  # type: ignore[attr-defined]
        for statement in undo:
            (tx.conn if store.engine == "postgresql" else tx).execute(statement)
    outbox.close()
    again = store.open()
    assert again.schema_problems() == []
    assert again.counts() == before


# -- kept messages, find_rows, requeue (replay and backfill, crossdock.replay) ------------


def kept(message_id: str, at: float, profile: str | None = None) -> KeptMessage:
    return KeptMessage(message_id, {"message": {"messageId": message_id}},
                       None if profile is None else f"p:{profile}", at)


def test_kept_messages_by_id_period_retention_and_erasure(outbox: Outbox) -> None:
    assert outbox.keep([kept("m1", T0, "alice"), kept("m2", T0 + 10, "bob"),
                        kept("m3", T0 + 20)]) == 3
    assert outbox.keep([kept("m1", T0 + 99, "alice")]) == 0  # kept once
    assert set(outbox.kept(["m1", "m3", "nope"])) == {"m1", "m3"}
    assert outbox.kept(["m1"])["m1"].enriched == {"message": {"messageId": "m1"}}
    first = outbox.kept_between(T0, T0 + 20)
    assert [m.message_id for m in first] == ["m1", "m2"]
    assert [m.message_id for m in outbox.kept_between(T0, None, after=first[0].seq)] == [
        "m2", "m3"]
    # An erased person's messages go, by their person keys.
    assert outbox.forget_people(["p:alice", "p:bob", "u:carol"]) == 2
    assert set(outbox.kept(["m1", "m2", "m3"])) == {"m3"}
    assert outbox.forget_kept(T0 + 21) == 1
    assert outbox.kept(["m3"]) == {}


def test_find_rows_filters_and_requeue_with_a_new_payload(outbox: Outbox) -> None:
    outbox.enqueue(rows("a", "m1", "m2", "m3") + rows("b", "m4"), now=T0)
    leased = outbox.lease("a", 3, 30, "w1", now=T0)
    outbox.settle("w1", Settlement(acks=[leased[0].id],
                                   deads=[(leased[1].id, "HTTP 400: email is not valid"),
                                          (leased[2].id, "HTTP 401: bad key 100%")]), T0 + 5)
    (b,) = outbox.lease("b", 1, 30, "w1", now=T0)
    outbox.dead(b.id, "HTTP 400: email", "w1", now=T0 + 50)
    dead = outbox.find_rows(RowQuery("dead"))
    assert [r.message_id for r in dead] == ["m2", "m3", "m4"]  # oldest first
    assert [r.message_id for r in outbox.find_rows(RowQuery("dead", reason="100%"))] == ["m3"]
    assert [r.message_id for r in outbox.find_rows(RowQuery("dead", "a", reason="email"))] == [
        "m2"]
    assert [r.message_id for r in outbox.find_rows(RowQuery("dead", since=T0 + 10))] == ["m4"]
    assert [r.message_id for r in outbox.find_rows(RowQuery("dead", until=T0 + 10))] == [
        "m2", "m3"]
    assert [r.message_id for r in outbox.find_rows(RowQuery("dead", ids=[b.id, 10**9]))] == [
        "m4"]
    assert [r.message_id for r in outbox.find_rows(RowQuery("delivered", "a"))] == ["m1"]
    # requeue changes only rows still in the state; a payload given replaces the stored one.
    assert outbox.requeue("dead", [(leased[1].id, {"n": "new"}), (leased[0].id, None)],
                          now=T0 + 60) == 1
    assert outbox.counts()["a"].delivered == 1
    assert outbox.requeue("delivered", [(leased[0].id, None)], now=T0 + 60) == 1
    # The delivered tally (outbox_stats.delivered) follows a delivered row sent again.
    assert (outbox.counts()["a"].delivered, outbox.counts()["a"].queued) == (0, 2)
    again = {i.message_id: i for i in outbox.lease("a", 5, 30, "w2", now=T0 + 60)}
    assert again["m2"].payload == {"n": "new"} and again["m2"].attempts == 1
    assert again["m1"].payload == {"n": "m1"}
    assert "m3" not in again


def test_a_backfill_checkpoint_commits_with_its_rows(outbox: Outbox) -> None:
    assert outbox.checkpoint("backfill:a") == 0
    with pytest.raises(RuntimeError), outbox.transaction():
        outbox.enqueue(rows("a", "m1"))
        outbox.save_checkpoint("backfill:a", 7)
        raise RuntimeError("interrupted")
    assert outbox.checkpoint("backfill:a") == 0 and outbox.counts() == {}
    with outbox.transaction():
        outbox.enqueue(rows("a", "m1"))
        outbox.save_checkpoint("backfill:a", 7)
    outbox.save_checkpoint("backfill:a", 9)
    assert outbox.checkpoint("backfill:a") == 9 and outbox.counts()["a"].queued == 1
