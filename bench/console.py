"""The console's pages with a big outbox: the overview and the dead-letter list answering over
HTTP (a real uvicorn server, a logged-in session) with 1,000,000 rows queued and 100,000
dead letters, beside the same queries run bare on a sqlite3 connection to the same file.

    python -m bench --only console

The page's figure is the median time of a GET, the baseline the median time of the SQL
the page runs (the overview: the outbox counts and the accepted-per-minute query; the
dead-letter list: the newest 200 dead letters), so the ratio is what the console adds around
its queries (rendering, HTTP, the session) and the absolute times say whether a page answers
in under 200 ms.
"""

from __future__ import annotations

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


def bench(settings: Settings) -> Outcome:
    import httpx

    from crossdock.console import ConsoleState, make_console_app
    from crossdock.loader import parse_config
    from crossdock.outbox.sqlite import SQLiteOutbox

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "core"))
    from collector_helpers import serve_app

    queued = settings.size(1_000_000, 20_000)
    dead = settings.size(100_000, 2_000)
    repeats = max(5, settings.repeats * 3)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "outbox.db"
        fill(db, queued, dead)
        raw = webhook_raw(f"sqlite:///{db}", "http://127.0.0.1:9/hook")
        raw["console"] = {"users": {"bench": {"password": PASSWORD, "role": "read-only"}}}
        loaded = parse_config(raw, base_dir=db.parent, env={})
        outbox = SQLiteOutbox(db)
        bare = sqlite3.connect(db)
        since = (time.time() // 60 - 59) * 60
        try:
            with serve_app(make_console_app(ConsoleState(loaded, outbox))) as url, \
                    httpx.Client(base_url=url, timeout=60) as client:
                login = client.post("/console/login", data={"name": "bench",
                                                             "password": PASSWORD})
                assert login.status_code == 303, login.text

                def page(path: str) -> Callable[[], object]:
                    def get() -> object:
                        answer = client.get(path)
                        assert answer.status_code == 200, answer.text[:500]
                        return answer
                    return get

                def overview_bare() -> object:
                    # outbox.counts()'s three queries and the per-minute one, as the page runs
                    bare.execute("SELECT destination, state, COUNT(*), SUM(attempts > 0), "
                                 "MIN(created_at) FROM outbox GROUP BY destination, state"
                                 ).fetchall()
                    bare.execute("SELECT destination, delivered_forgotten, dropped_attributes,"
                                 " last_error, last_error_at FROM outbox_stats").fetchall()
                    bare.execute("SELECT * FROM outbox_circuits").fetchall()
                    return bare.execute(
                        "SELECT CAST(FLOOR(accepted_at / 60) AS BIGINT) AS minute, COUNT(*) "
                        "FROM outbox_messages WHERE accepted_at >= ? GROUP BY minute",
                        [since]).fetchall()

                def dead_bare() -> object:
                    return bare.execute(
                        "SELECT id, destination, message_id, attempts, last_error, updated_at, "
                        "payload FROM outbox WHERE state = 'dead' "
                        "ORDER BY updated_at DESC, id DESC LIMIT 200").fetchall()

                figures = {
                    "overview": (timed(page("/console/"), repeats),
                                 timed(overview_bare, repeats)),
                    "dead letters": (timed(page("/console/dead-letters"), repeats),
                                     timed(dead_bare, repeats)),
                    "dead letters of one destination": (
                        timed(page(f"/console/dead-letters?destination={DESTINATIONS[0]}"),
                              repeats),
                        timed(lambda: bare.execute(
                            "SELECT id, destination, message_id, attempts, last_error, "
                            "updated_at, payload FROM outbox WHERE state = 'dead' AND "
                            "destination = ? ORDER BY updated_at DESC, id DESC LIMIT 200",
                            [DESTINATIONS[0]]).fetchall(), repeats)),
                }
        finally:
            bare.close()
            outbox.close()
    size = f"{queued:,} queued, {dead:,} dead"
    rows = [Row("console", f"{name} page ({size})", "ms", ours, base,
                "the same queries, bare sqlite3", f"< {TARGET_MS:.0f} ms", ours < TARGET_MS)
            for name, (ours, base) in figures.items()]
    return Outcome(rows, {"queued": queued, "dead": dead, "repeats": repeats})
