"""The profile store's lookups are index probes on both engines, whatever the planner's
statistics say (issue 20, docs/benchmarks.md "Profile store query plans").

On PostgreSQL the tables are analyzed while empty and then filled (statistics older than the
table, as in a store that grows faster than autovacuum analyzes it), and every plan is the
generic one (`plan_cache_mode = force_generic_plan`, what a statement prepared by psycopg
gets after five runs). The identity lookup used to be `type IN (...) AND value IN (...)`: with
those statistics its plan read every identity of the call's types and filtered them by value,
then hashed all of `profiles`; the data dictionary's read of its call's rejections was a seq
scan of all of them. On SQLite a merge read the whole profiles table (no index on
merged_into)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_helpers import PG_URL, pg_unreachable
from sqlite_utils import Database

from crossdock.models import Message, parse_message
from crossdock.outbox import open_outbox
from crossdock.outbox.base import shared_sql
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.outbox.postgres import PgTransaction, PostgresOutbox
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.profiles import ProfileStore
from crossdock.profiles.dictionary import DictionaryWatch
from crossdock.profiles.sql import upsert

PEOPLE = 3000
T0 = 1_700_000_000.0


def fill(db: Database, people: int) -> None:
    """`people` known profiles, each with its userId, anonymousId and email."""
    upsert(db, "profiles", ("id", "user_id", "created_at", "updated_at", "message_count"),
           ("id",), [(f"p_{i}", f"user-{i}", T0, T0, 1) for i in range(people)])
    upsert(db, "profile_identities", ("type", "value", "profile_id", "first_seen",
                                      "last_seen"), ("type", "value"),
           [(kind, value.format(i), f"p_{i}", T0, T0) for i in range(people)
            for kind, value in (("userId", "user-{}"), ("anonymousId", "anon-{}"),
                                ("email", "user{}@example.com"))])


def messages() -> list[Message]:
    """100 messages of known people (300 identities to look up), and one merge: an anonymous
    visitor who then identifies as a known person."""
    out = [parse_message({
        "type": "identify", "messageId": f"m-{k}", "userId": f"user-{k * 7}",
        "anonymousId": f"anon-{k * 7}", "traits": {"email": f"user{k * 7}@example.com"},
    }) for k in range(98)]
    out.append(parse_message({"type": "track", "event": "x", "messageId": "m-new",
                              "anonymousId": "visitor"}))
    out.append(parse_message({"type": "track", "event": "x", "messageId": "m-merge",
                              "anonymousId": "visitor", "userId": "user-1"}))
    return out


def run_batch(store: ProfileStore, db: Database) -> None:
    batch = store.prepare(db, messages())
    for message in messages():
        batch.resolve(message)
    batch.flush()


def test_sqlite_lookups_and_merges_probe_indexes(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "crossdock.db")
    store = ProfileStore(db=outbox.db)
    fill(outbox.db, PEOPLE)
    statements: list[str] = []
    outbox.db.conn.set_trace_callback(statements.append)  # the SQL with its values inlined
    with outbox.db.conn:
        run_batch(store, outbox.db)
    outbox.db.conn.set_trace_callback(None)
    plans = {sql: [str(step[3]) for step in outbox.db.execute(f"EXPLAIN QUERY PLAN {sql}")]
             for sql in statements if sql.startswith(("SELECT", "UPDATE", "DELETE"))}
    # No statement of the call reads a whole table: every table is searched by an index
    # (SCAN only of the VALUES lists the statements bring).
    scans = {sql[:120]: plan for sql, plan in plans.items()
             if any(re.match(r"SCAN (?!w$|\d+ CONSTANT ROWS)", step) for step in plan)}
    assert not scans, scans
    identities = [plan for sql, plan in plans.items() if "profile_identities AS t" in sql]
    assert identities, plans
    for plan in identities:
        assert any("profile_identities_1 (type=? AND value=?)" in step for step in plan), plan
    merges = [plan for sql, plan in plans.items() if "WHERE merged_into = " in sql]
    assert merges, plans
    outbox.close()


@pytest.fixture
def pg_outbox() -> Iterator[tuple[PostgresOutbox, str]]:
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with temporary_schema(PG_URL, "crossdock_plans") as url:
        outbox = open_outbox(url)
        assert isinstance(outbox, PostgresOutbox)
        try:
            yield outbox, url
        finally:
            outbox.close()


def generic_plan(url: str, sql: str, params: list[Any]) -> str:
    """EXPLAIN of `sql` (with `?` placeholders) as a generic plan of a prepared statement."""
    numbers = iter(range(1, len(params) + 1))
    text = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)
    with psycopg.connect(url) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        cursor = psycopg.ClientCursor(conn)
        cursor.execute(f"PREPARE lookup AS {text}".replace("%", "%%"), [])
        marks = ",".join(["%s"] * len(params))
        rows = cursor.execute(f"EXPLAIN EXECUTE lookup({marks})", params).fetchall()
        conn.rollback()
    return "\n".join(str(row[0]) for row in rows)


def stale_statistics(url: str, *tables: str) -> None:
    """Analyze `tables` while they are empty (and keep autovacuum from doing it again), so
    that their statistics are older than what the test puts in them."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            conn.execute(f"ANALYZE {table}")


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Every statement run through a PostgreSQL outbox transaction, with its parameters."""
    statements: list[tuple[str, list[Any]]] = []
    execute = PgTransaction.execute

    def tracing(self: PgTransaction, sql: str, params: Any = None) -> psycopg.Cursor[Any]:
        statements.append((sql, list(params or [])))
        return execute(self, sql, params)

    monkeypatch.setattr(PgTransaction, "execute", tracing)
    return statements


@pytest.mark.postgres
def test_postgresql_identity_lookups_probe_indexes_with_stale_statistics(
        pg_outbox: tuple[PostgresOutbox, str], traced: list[tuple[str, list[Any]]]) -> None:
    outbox, url = pg_outbox
    stale_statistics(url, "profiles", "profile_identities")
    with outbox.transaction() as tx:
        fill(shared_sql(tx), PEOPLE)
    with outbox.transaction() as tx:
        run_batch(ProfileStore(), shared_sql(tx))
    lookups = [(sql, params) for sql, params in traced
               if sql.startswith("SELECT") and "profile_identities" in sql
               and "profile_id IN" not in sql]
    # lock_owners reads the owners (twice: once to lock, once to see they stayed), then the
    # batch reads the identities
    assert len(lookups) >= 3, traced
    for sql, params in lookups:
        plan = generic_plan(url, sql, params)
        assert "Seq Scan" not in plan and "Filter" not in plan, plan
        assert re.search(r"Index Cond: \(\(type = w\.a\) AND \(value = w\.b\)\)", plan), plan


@pytest.mark.postgres
def test_postgresql_dictionary_reads_the_calls_rejections_by_an_index_range(
        pg_outbox: tuple[PostgresOutbox, str], traced: list[tuple[str, list[Any]]]) -> None:
    # The data dictionary reads the rejections its call's messages caused, past the highest
    # id it saw before the call: `id > ?` alone was a seq scan of the whole table in a generic
    # plan with stale statistics, once per accept call, on a table that only grows.
    outbox, url = pg_outbox
    stale_statistics(url, "profile_rejections")
    with outbox.transaction() as tx:
        tx.execute("INSERT INTO profile_rejections (profile_id, message_id, attribute, rule, "
                   "detail, at) SELECT 'p', 'old-' || i, 'plan', 'type', 'd', 0 "
                   "FROM generate_series(1, 3000) AS i")
    called = messages()[:2]
    watch = DictionaryWatch()
    with outbox.transaction() as tx:
        db = shared_sql(tx)
        watch.prepare(db, called)
        for message in called:
            watch.resolved(db, message, [])
        db.execute("INSERT INTO profile_rejections (profile_id, message_id, attribute, rule, "
                   "detail, at) VALUES ('p', ?, 'plan', 'type', 'd', ?)",
                   [called[0].message_id, T0])
        watch.finish(db)
        counted = db.execute("SELECT name, rule, datapoints FROM "
                             "profile_dictionary_rejections").fetchall()
    assert counted == [("plan", "type", 1)]
    reads = [(sql, params) for sql, params in traced
             if sql.startswith("SELECT message_id") and "FROM profile_rejections" in sql]
    assert reads, traced
    for sql, params in reads:
        plan = generic_plan(url, sql, params)
        assert "Seq Scan" not in plan and "profile_rejections_pkey" in plan, plan
