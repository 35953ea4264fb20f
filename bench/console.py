"""The console's pages with a big outbox: the overview and the dead-letter list answering over
HTTP (a real uvicorn server, a logged-in session) with 1,000,000 rows queued and 100,000
dead letters, beside the same queries run bare on a connection of their own (sqlite3 on the
same file; psycopg on the same PostgreSQL schema). On SQLite the outbox is filled by the
pipeline; on PostgreSQL (when the test server answers, $CROSSDOCK_TEST_PG) the same rows are
made in SQL, then VACUUM ANALYZE (what autovacuum does to a table that big soon after).

    python -m bench --only console

The page's figure is the median time of a GET, the baseline the median time of the SQL
the page stands for (the overview: the outbox counts and the accepted-per-minute query; the
dead-letter list: the newest 200 dead letters), and the absolute times say whether a page
answers in under 200 ms. The overview renders the console's counts snapshot
(crossdock.console.snapshot), read in the background: its page row is the page around that
snapshot, and a row of its own times the background read (what the snapshot's age adds to,
at the most: read time plus the refresh interval) against the same queries bare.
"""

from __future__ import annotations

import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import DESTINATIONS, Outcome, Row, Settings, webhook_raw
from bench.common import sample_message as message

TARGET_MS = 200.0
PASSWORD = "bench-console-password"


def fill(db: Path, queued: int, dead: int) -> None:
    """`queued` rows waiting over the destinations and `dead` dead letters (of the first)."""
    from crossdock.loader import parse_config
    from crossdock.outbox.sqlite import SQLiteOutbox
    from crossdock.pipeline import Pipeline

    loaded = parse_config(webhook_raw(f"sqlite:///{db}", "http://127.0.0.1:9/hook"),
                          base_dir=db.parent, env={})
    outbox = SQLiteOutbox(db)
    Pipeline(loaded, outbox).accept_iter(
        message(i) for i in range((queued + dead) // len(DESTINATIONS)))
    outbox.close()
    with sqlite3.connect(db) as conn:
        # Dead letters made in SQL: how they died does not matter to the pages, only that
        # there are this many, with their reasons and times spread over a day.
        conn.execute(
            "UPDATE outbox SET state = 'dead', attempts = 8, "
            "last_error = 'HTTP 400: ' || (id % 17) || ' invalid field', "
            "updated_at = ? - (id % 86400) WHERE id IN (SELECT id FROM outbox "
            "WHERE destination = ? ORDER BY id LIMIT ?)", [time.time(), DESTINATIONS[0], dead])


def timed(run: Callable[[], object], repeats: int) -> float:
    """The median milliseconds of `repeats` runs (after one run to warm the caches)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


# The SQL each page runs, written for sqlite3 ("?"; PostgreSQL's driver takes "%s"):
# outbox.counts()'s queries and the per-minute one (the overview), the newest 200 dead
# letters, of all destinations and of one.
_DEAD_SQL = ("SELECT id, destination, message_id, attempts, last_error, updated_at, payload "
             "FROM outbox WHERE state = 'dead' {mine}ORDER BY updated_at DESC, id DESC "
             "LIMIT 200")
_PER_MINUTE_SQL = ("SELECT CAST(FLOOR(accepted_at / 60) AS BIGINT) AS minute, COUNT(*) "
                   "FROM outbox_messages WHERE accepted_at >= ? GROUP BY minute")


def fill_postgres(url: str, queued: int, dead: int) -> None:
    """The rows `fill` makes, made in SQL: every row with the same 900-byte payload."""
    import json

    import psycopg

    from crossdock.outbox import open_outbox

    open_outbox(url).close()  # the schema, migrated
    per_destination = (queued + dead) // len(DESTINATIONS)
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO outbox (destination, message_id, payload, person, next_attempt_at, "
            "created_at, updated_at) SELECT d, 'bench-' || i, %s, 'p:user-' || (i %% 5000), "
            "%s + i * 1e-5, %s + i * 1e-5, %s FROM generate_series(0, %s - 1) AS i, "
            "unnest(%s::text[]) AS d ORDER BY i, d",
            [json.dumps(message(0)), now, now, now, per_destination, list(DESTINATIONS)])
        conn.execute(
            "UPDATE outbox SET state = 'dead', attempts = 8, "
            "last_error = 'HTTP 400: ' || (id %% 17) || ' invalid field', "
            "updated_at = %s - (id %% 86400) WHERE id IN (SELECT id FROM outbox "
            "WHERE destination = %s ORDER BY id LIMIT %s)", [now, DESTINATIONS[0], dead])
        conn.execute(
            "INSERT INTO outbox_messages (message_id, enriched, accepted_at) "
            "SELECT 'bench-' || i, '{}', %s FROM generate_series(0, %s - 1) AS i",
            [now, per_destination])
        conn.execute("VACUUM ANALYZE outbox")
        conn.execute("VACUUM ANALYZE outbox_messages")


def measure(outbox_url: str, bare: Callable[[str, list[object]], object],
            repeats: int) -> dict[str, tuple[float, float]]:
    """Each page's median milliseconds and its queries' (run by `bare`), on the outbox at
    `outbox_url`."""
    import httpx

    from crossdock.console import ConsoleState, make_console_app
    from crossdock.loader import parse_config
    from crossdock.outbox import open_outbox
    from crossdock.outbox.base import COUNTS_QUERIES, COUNTS_STATS_SQL

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "core"))
    from collector_helpers import serve_app

    raw = webhook_raw(outbox_url, "http://127.0.0.1:9/hook")
    raw["console"] = {"users": {"bench": {"password": PASSWORD, "role": "read-only"}}}
    loaded = parse_config(raw, base_dir=Path(tempfile.gettempdir()), env={})
    outbox = open_outbox(outbox_url)
    sqlite = outbox_url.startswith("sqlite")
    since = (time.time() // 60 - 59) * 60
    state = ConsoleState(loaded, outbox)
    try:
        with serve_app(make_console_app(state)) as url, \
                httpx.Client(base_url=url, timeout=60) as client:
            form = client.get("/console/login").text
            token = re.search(r'name="login_csrf" value="([^"]+)"', form)
            assert token, "no login_csrf field on the login page"
            login = client.post("/console/login", data={
                "name": "bench", "password": PASSWORD, "login_csrf": token.group(1)})
            assert login.status_code == 303, login.text

            def page(path: str) -> Callable[[], object]:
                def get() -> object:
                    answer = client.get(path)
                    assert answer.status_code == 200, answer.text[:500]
                    return answer
                return get

            def overview_bare() -> object:
                # outbox.counts()'s queries and the per-minute one, as the page runs them
                for index, sql in COUNTS_QUERIES:
                    bare(sql.format(outbox=f"outbox INDEXED BY {index}" if sqlite
                                    else "outbox"), [])
                bare(COUNTS_STATS_SQL, [])
                bare("SELECT * FROM outbox_circuits", [])
                bare("SELECT * FROM outbox_paused", [])
                return bare(_PER_MINUTE_SQL, [since])

            bare_overview = timed(overview_bare, repeats)
            return {
                "overview": (timed(page("/console/"), repeats), bare_overview),
                # What a page no longer waits on: one read of the snapshot (the counts and
                # the chart's minutes, through outbox_status and accepted_per_minute).
                "overview's counts snapshot, read in the background": (
                    timed(state.counts.refresh, repeats), bare_overview),
                "dead letters": (timed(page("/console/dead-letters"), repeats),
                                 timed(lambda: bare(_DEAD_SQL.format(mine=""), []),
                                       repeats)),
                "dead letters of one destination": (
                    timed(page(f"/console/dead-letters?destination={DESTINATIONS[0]}"),
                          repeats),
                    timed(lambda: bare(_DEAD_SQL.format(mine="AND destination = ? "),
                                       [DESTINATIONS[0]]), repeats)),
            }
    finally:
        state.stop()
        outbox.close()


def bench(settings: Settings) -> Outcome:
    import psycopg

    from crossdock.outbox.pg_schema import temporary_schema

    queued = settings.size(1_000_000, 20_000)
    dead = settings.size(100_000, 2_000)
    repeats = max(5, settings.repeats * 3)
    figures: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "outbox.db"
        fill(db, queued, dead)
        with sqlite3.connect(db) as conn:
            figures["SQLite"] = measure(
                f"sqlite:///{db}", lambda sql, params: conn.execute(sql, params).fetchall(),
                repeats)
        conn.close()
    pg_url = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with temporary_schema(pg_url, prefix="crossdock_bench") as url, \
                psycopg.connect(url, autocommit=True) as pg:
            fill_postgres(url, queued, dead)
            figures["PostgreSQL"] = measure(
                url, lambda sql, params: pg.execute(sql.replace("?", "%s"),
                                                    params).fetchall(), repeats)
    except psycopg.OperationalError as exc:
        print(f"   console: PostgreSQL skipped ({exc})".strip(), file=sys.stderr)
    size = f"{queued:,} queued, {dead:,} dead"
    rows = [Row("console", f"{engine}: {name}{'' if 'snapshot' in name else ' page'} "
                f"({size})", "ms", ours, base, "the same queries, bare",
                "" if "snapshot" in name else f"< {TARGET_MS:.0f} ms",
                None if "snapshot" in name else ours < TARGET_MS)
            for engine, pages in figures.items() for name, (ours, base) in pages.items()]
    return Outcome(rows, {"queued": queued, "dead": dead, "repeats": repeats,
                          "engines": list(figures)})
