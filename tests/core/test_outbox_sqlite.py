"""The SQLite outbox keeps the Outbox contract on a real file, across connections and
processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crossdock.errors import OutboxError
from crossdock.outbox import open_outbox
from crossdock.outbox.base import NewRow
from crossdock.outbox.migrations import MIGRATIONS_TABLE, OUTBOX_MIGRATIONS, upgrade
from crossdock.outbox.sqlite import SQLiteOutbox

T0 = 1_000_000.0


def rows(n: int, destination: str = "a", start: int = 0) -> list[NewRow]:
    return [NewRow(destination, f"m{i}", {"n": i}) for i in range(start, start + n)]


def test_enqueue_skips_a_destination_message_pair_already_present(outbox: SQLiteOutbox) -> None:
    assert outbox.enqueue(rows(3), now=T0) == 3
    assert outbox.enqueue([*rows(3), *rows(1, start=3), NewRow("b", "m0", {})], now=T0) == 2
    counts = outbox.counts()
    assert (counts["a"].queued, counts["b"].queued) == (4, 1)
    assert outbox.enqueue_new([NewRow("a", "m0", {}), NewRow("a", "m9", {})]) == {("a", "m9")}


def test_lease_takes_due_rows_oldest_first_and_counts_attempts(outbox: SQLiteOutbox) -> None:
    outbox.enqueue(rows(5), now=T0)
    first = outbox.lease("a", 3, 30, "w1", now=T0)
    assert [i.message_id for i in first] == ["m0", "m1", "m2"]
    assert all(i.attempts == 1 and i.created_at == T0 for i in first)
    assert first[0].payload == {"n": 0}
    rest = outbox.lease("a", 10, 30, "w2", now=T0)
    assert [i.message_id for i in rest] == ["m3", "m4"]
    assert outbox.lease("a", 10, 30, "w3", now=T0 + 1) == []
    assert outbox.lease("other", 10, 30, "w3", now=T0) == []
    row = outbox.row("a", "m0")
    assert row is not None
    assert (row["state"], row["lease_owner"], row["lease_expires_at"]) == ("leased", "w1", T0 + 30)


def test_ack_retry_dead_replay_and_counts(outbox: SQLiteOutbox) -> None:
    outbox.enqueue(rows(4), now=T0)
    a, b, c, d = outbox.lease("a", 4, 30, "w", now=T0)
    outbox.ack([a.id], "w", now=T0 + 1)
    outbox.retry(b.id, T0 + 100, "HTTP 500: oops", "w")
    outbox.dead(c.id, "HTTP 400: bad email", "w", now=T0 + 2)
    counts = outbox.counts()["a"]
    assert (counts.queued, counts.leased, counts.retrying, counts.delivered, counts.dead) == (
        1, 1, 1, 1, 1)
    assert counts.last_error == "HTTP 400: bad email"

    assert outbox.next_due("a") == T0 + 30  # d's lease expiry comes first
    outbox.ack([d.id], "w")
    assert outbox.next_due("a") == T0 + 100
    # The retried row is not due before its time, and is after it.
    assert outbox.lease("a", 10, 30, "w", now=T0 + 99) == []
    (again,) = outbox.lease("a", 10, 30, "w", now=T0 + 100)
    assert (again.id, again.attempts) == (b.id, 2)

    (letter,) = outbox.dead_letters("a")
    assert (letter.id, letter.message_id, letter.reason, letter.failed_at, letter.attempts) == (
        c.id, "m2", "HTTP 400: bad email", T0 + 2, 1)
    assert letter.payload == {"n": 2}
    assert outbox.replay("a") == 1
    assert outbox.dead_letters() == []
    replayed = outbox.row("a", "m2")
    assert replayed is not None and (replayed["state"], replayed["attempts"]) == ("queued", 0)
    assert outbox.replay(ids=[c.id]) == 0  # no longer dead


def test_cleanup_forgets_delivered_rows_but_keeps_their_count(outbox: SQLiteOutbox) -> None:
    outbox.enqueue(rows(3), now=T0)
    items = outbox.lease("a", 3, 30, "w", now=T0)
    outbox.ack([items[0].id], "w", now=T0 + 10)
    outbox.ack([items[1].id], "w", now=T0 + 50)
    assert outbox.cleanup(delivered_before=T0 + 20) == 1
    assert outbox.row("a", "m0") is None
    assert outbox.row("a", "m1") is not None
    assert outbox.counts()["a"].delivered == 2
    assert outbox.cleanup(delivered_before=T0 + 100) == 1
    assert outbox.counts()["a"].delivered == 2
    assert outbox.counts()["a"].leased == 1


def test_an_expired_lease_is_taken_over_by_a_second_owner(outbox: SQLiteOutbox) -> None:
    outbox.enqueue(rows(1), now=T0)
    (mine,) = outbox.lease("a", 1, 30, "worker-1", now=T0)
    assert outbox.lease("a", 1, 30, "worker-2", now=T0 + 29) == []
    (theirs,) = outbox.lease("a", 1, 30, "worker-2", now=T0 + 31)
    assert theirs.id == mine.id and theirs.attempts == 2
    row = outbox.row("a", "m0")
    assert row is not None and row["lease_owner"] == "worker-2"
    assert outbox.counts()["a"].leased == 1


def test_release_gives_a_lease_back_without_counting_the_attempt(outbox: SQLiteOutbox) -> None:
    outbox.enqueue(rows(1), now=T0)
    (item,) = outbox.lease("a", 1, 30, "w", now=T0)
    outbox.release([item.id], "w", now=T0 + 1)
    (again,) = outbox.lease("a", 1, 30, "w", now=T0 + 1)
    assert again.attempts == 1


def test_a_malformed_payload_becomes_a_dead_letter_not_an_error(outbox: SQLiteOutbox) -> None:
    outbox.enqueue(rows(2), now=T0)
    outbox.db.execute("UPDATE outbox SET payload = '{broken' WHERE message_id = 'm0'")
    (item,) = outbox.lease("a", 10, 30, "w", now=T0)
    assert item.message_id == "m1"
    (letter,) = outbox.dead_letters()
    assert letter.message_id == "m0" and "malformed payload" in letter.reason


def test_a_payload_that_is_not_utf8_becomes_a_dead_letter_not_an_error(
    outbox: SQLiteOutbox,
) -> None:
    # The lease reads payloads as bytes: a row whose text is not UTF-8 (written by hand) is
    # malformed like any other, where reading it as text stopped every lease of its
    # destination.
    outbox.enqueue(rows(2), now=T0)
    outbox.db.execute("UPDATE outbox SET payload = CAST(x'7b22223aff7d' AS TEXT) "
                      "WHERE message_id = 'm0'")
    (item,) = outbox.lease("a", 10, 30, "w", now=T0)
    assert item.message_id == "m1" and item.payload == {"n": 1}
    assert outbox.counts()["a"].dead == 1


def test_a_transaction_rolls_back_everything_written_in_it(outbox: SQLiteOutbox) -> None:
    outbox.db.execute("CREATE TABLE side (x INTEGER)")
    with pytest.raises(RuntimeError), outbox.transaction() as db:
        db.execute("INSERT INTO side VALUES (1)")
        outbox.enqueue(rows(2), now=T0)
        raise RuntimeError("route failed")
    assert outbox.counts() == {}
    assert outbox.db.execute("SELECT COUNT(*) FROM side").fetchone()[0] == 0
    with outbox.transaction() as db:
        db["side"].insert({"x": 2})  # sqlite-utils' own writes join the transaction
        outbox.enqueue(rows(2), now=T0)
    assert outbox.counts()["a"].queued == 2
    assert outbox.db.execute("SELECT COUNT(*) FROM side").fetchone()[0] == 1


def test_dropped_attributes_are_counted_once_per_new_row(outbox: SQLiteOutbox) -> None:
    payload = {"dropped": {"event_attributes": 2, "user_attributes": 1}}
    outbox.enqueue([NewRow("a", "m1", payload)], now=T0)
    outbox.enqueue([NewRow("a", "m1", payload)], now=T0)
    assert outbox.counts()["a"].dropped_attributes == 3


def test_migrations_are_recorded_and_reopening_keeps_queued_rows(tmp_path: Path) -> None:
    path = tmp_path / "crossdock.db"
    first = SQLiteOutbox(path)
    every = [fn.__name__ for fn in OUTBOX_MIGRATIONS]
    assert first.migrated == every
    first.enqueue(rows(2), now=T0)
    first.close()
    second = open_outbox(f"sqlite:///{path}")
    assert isinstance(second, SQLiteOutbox)
    assert second.migrated == []
    assert upgrade(second.db) == []
    names = [r[0] for r in second.db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")]
    assert names == every
    assert second.counts()["a"].queued == 2
    assert second.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second.close()


def test_counts_and_the_dead_letter_list_read_indexes_only(tmp_path: Path) -> None:
    # What keeps `crossdock status` and the console fast with a million rows queued
    # (docs/benchmarks.md, "Operator console"): no query of counts() visits the table, and
    # the dead-letter list walks an index newest first instead of sorting every dead row.
    outbox = SQLiteOutbox(tmp_path / "crossdock.db")
    statements: list[str] = []
    outbox.db.conn.set_trace_callback(statements.append)
    outbox.counts()
    outbox.dead_letters()
    outbox.dead_letters("a")
    outbox.db.conn.set_trace_callback(None)
    plans = {sql: " | ".join(str(step[3]) for step in outbox.db.execute(
                 f"EXPLAIN QUERY PLAN {sql}",
                 [None] * sql.count("?")).fetchall())
             for sql in statements if "FROM outbox " in sql}
    counting = [plan for sql, plan in plans.items() if "COUNT(*)" in sql]
    listing = [plan for sql, plan in plans.items() if "ORDER BY updated_at DESC" in sql]
    assert len(counting) == 3 and len(listing) == 2, plans
    assert all("COVERING INDEX" in plan for plan in counting), counting
    assert all("outbox_dead" in plan and "TEMP B-TREE" not in plan for plan in listing), listing
    outbox.close()


def test_open_outbox_explains_a_bad_url_or_folder(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="must start with sqlite:///"):
        open_outbox("mysql://x")
    with pytest.raises(OutboxError, match="does not exist"):
        open_outbox(f"sqlite:///{tmp_path}/missing/crossdock.db")


LEASER = textwrap.dedent("""
    import json, sys
    from crossdock.outbox.sqlite import SQLiteOutbox
    from crossdock.outbox.base import NewRow
    box = SQLiteOutbox(sys.argv[1])
    prefix = sys.argv[2]
    # Write while the other process writes and leases the same file.
    for start in range(0, 300, 20):
        box.enqueue([NewRow("b", f"{prefix}{i}", {"i": i}) for i in range(start, start + 20)])
    got = []
    while True:
        items = box.lease("a", 7, 300, prefix)
        if not items:
            break
        got += [item.id for item in items]
        box.ack([item.id for item in items], prefix)
    print(json.dumps(got))
""")


def test_two_processes_write_and_lease_the_same_file_without_losing_or_sharing_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crossdock.db"
    box = SQLiteOutbox(path)
    box.enqueue(rows(500))
    procs = [
        subprocess.Popen([sys.executable, "-c", LEASER, str(path), name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("p1-", "p2-")
    ]
    leased = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        leased.append(json.loads(out))
    assert set(leased[0]).isdisjoint(leased[1])
    assert len(leased[0]) + len(leased[1]) == 500
    counts = box.counts()
    assert counts["a"].delivered == 500
    assert counts["b"].queued == 600
    box.close()


def _settled(outbox: SQLiteOutbox, rows: int, payload: dict[str, object]) -> None:
    """`rows` rows of `payload`, all delivered at T0."""
    outbox.enqueue([NewRow("a", f"m{i}", payload) for i in range(rows)], now=T0)
    while items := outbox.lease("a", 1000, 30, "w", now=T0, ordered=False):
        outbox.ack([item.id for item in items], "w", now=T0)


def _size(path: Path) -> int:
    """The outbox's bytes on disk: the database file and its WAL."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_cleanup_forgets_in_short_transactions_and_gives_the_space_back(
    tmp_path: Path,
) -> None:
    # Forgetting 500,000 rows was one DELETE holding the write lock for seconds (the
    # collector waited), and the file and its WAL never shrank.
    path = tmp_path / "crossdock.db"
    outbox = SQLiteOutbox(path)
    _settled(outbox, 5000, {"text": "x" * 2000})
    outbox.enqueue([NewRow("a", "waiting", {})], now=T0 + 5)  # still waiting: kept
    full = _size(path)
    statements: list[str] = []
    outbox.db.conn.set_trace_callback(statements.append)
    assert outbox.cleanup(T0 + 1, chunk=1000) == 5000
    outbox.db.conn.set_trace_callback(None)
    deletes = [s for s in statements if s.startswith("DELETE FROM outbox WHERE")]
    assert len(deletes) == 5 and all(s.count(",") == 999 for s in deletes)
    assert statements.count("COMMIT") >= 5  # each chunk its own transaction
    assert _size(path) < full / 10  # the file and the WAL gave the space back
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    c = outbox.counts()["a"]
    assert (c.delivered, c.queued) == (5000, 1)
    outbox.close()


def test_an_outbox_made_before_incremental_vacuum_is_converted_at_its_first_cleanup(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crossdock.db"
    with sqlite3.connect(path) as conn:  # an older file: tables made without auto-vacuum
        conn.execute("CREATE TABLE notes (x TEXT)")
    outbox = SQLiteOutbox(path)
    assert outbox.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    _settled(outbox, 2000, {"text": "x" * 2000})
    full = _size(path)
    assert outbox.cleanup(T0 + 1) == 2000
    assert outbox.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert _size(path) < full / 10
    outbox.close()
