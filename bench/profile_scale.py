"""Profile store scaling: messages per second and peak RSS with 10,000, 100,000 and 1,000,000
known profiles in the store, as a ratio to the smallest store.

The store is built with bulk SQL (one INSERT ... SELECT over a counter per table, not through
the pipeline): every profile known by userId `user-k`, with its anonymousId `anon-k` and email
`userk@example.com` as identities and an email and a `plan` attribute. Then a fresh process
(`python -m bench.profile_scale run DB N MESSAGES`) accepts MESSAGES track calls of people
drawn at random from all N through `Pipeline.accept` (100 per call, the profile store on, one
webhook destination) and reports messages per second and its peak RSS (VmHWM). A growing
store must cost at most the logarithm of its size: every lookup is by an index.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Outcome, Row, Settings, elapsed, run_json, sample_message, webhook_config

BATCH = 100
NOW = 1_700_000_000.0


def build(db: Path, people: int) -> None:
    """The outbox and profile tables of `db`, with `people` known profiles."""
    from crossdock.outbox.sqlite import SQLiteOutbox
    from crossdock.profiles import ProfileStore

    outbox = SQLiteOutbox(db)
    ProfileStore(db=outbox.db)  # creates the profile tables
    conn = outbox.db.conn
    counter = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    last = people - 1
    conn.execute("BEGIN")
    conn.execute(counter + "INSERT INTO profiles (id, user_id, created_at, updated_at, "
                 "message_count) SELECT 'p_' || i, 'user-' || i, ?, ?, 1 FROM n",
                 [last, NOW, NOW])
    for kind, value in (("userId", "'user-' || i"), ("anonymousId", "'anon-' || i"),
                        ("email", "'user' || i || '@example.com'")):
        conn.execute(counter + "INSERT INTO profile_identities (type, value, profile_id, "
                     f"first_seen, last_seen) SELECT ?, {value}, 'p_' || i, ?, ? FROM n",
                     [last, kind, NOW, NOW])
    conn.execute(counter + "INSERT INTO profile_system_attributes (profile_id, name, type, "
                 "value, updated_at) SELECT 'p_' || i, 'email', 'string', "
                 "'\"user' || i || '@example.com\"', ? FROM n", [last, NOW])
    conn.execute(counter + "INSERT INTO profile_custom_attributes (profile_id, name, type, "
                 "value, updated_at) SELECT 'p_' || i, 'plan', 'string', '\"pro\"', ? FROM n",
                 [last, NOW])
    conn.execute("INSERT INTO profile_attribute_definitions (part, name, type, first_seen) "
                 "VALUES ('system', 'email', 'string', ?), ('custom', 'plan', 'string', ?)",
                 [NOW, NOW])
    conn.execute("COMMIT")
    outbox.close()


def message(message_id: str, person: int) -> dict[str, Any]:
    raw = sample_message(0)
    raw["messageId"] = message_id
    raw["userId"] = f"user-{person}"
    raw["anonymousId"] = f"anon-{person}"
    raw["context"]["traits"] = {"email": f"user{person}@example.com", "plan": "pro"}
    return raw


def run(db: Path, people: int, messages: int) -> dict[str, float]:
    from bench.memory import peak_mb
    from crossdock.outbox.sqlite import SQLiteOutbox
    from crossdock.pipeline import Pipeline
    from crossdock.profiles import make_profile_hook

    loaded = webhook_config(db, "http://127.0.0.1:9/hook", names=("hook-a",))
    outbox = SQLiteOutbox(db)
    pipeline = Pipeline(loaded, outbox, make_profile_hook(loaded, outbox))
    pick = random.Random(7)
    run_id = uuid.uuid4().hex[:8]  # message ids of their own: a repeat on the same store
    calls = [[message(f"scale-{run_id}-{start + j}", pick.randrange(people))
              for j in range(BATCH)]
             for start in range(0, messages, BATCH)]
    pipeline.accept(calls[0])  # warm-up: imports, compiled mappings
    start = time.perf_counter()
    for raws in calls[1:]:
        result = pipeline.accept(raws)
        if len(result.accepted) != len(raws):
            raise RuntimeError(f"profile scale: accepted {len(result.accepted)} of {len(raws)} "
                               f"({result.errors[:1]})")
    seconds = elapsed(start)
    with outbox.transaction() as tx:
        known = tx.execute("SELECT COUNT(*) FROM profiles").fetchone()[0]
    outbox.close()
    if known != people:
        raise RuntimeError(f"profile scale: {known} profiles after the run, not {people}: "
                           "the messages did not find their people")
    return {"messages_per_s": (messages - BATCH) / seconds, "peak_mb": peak_mb()}


def bench(settings: Settings) -> Outcome:
    sizes = [10_000, 100_000, 1_000_000] if not settings.quick else [1_000, 2_000, 5_000]
    messages = settings.size(5_000, 300)
    found: dict[int, dict[str, float]] = {}
    build_seconds: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for people in sizes:
            db = Path(tmp) / f"profiles-{people}.db"
            start = time.perf_counter()
            run_json("bench.profile_scale", "build", str(db), str(people), timeout=1800)
            build_seconds[people] = elapsed(start)
        rates: dict[int, list[float]] = {p: [] for p in sizes}
        peaks: dict[int, list[float]] = {p: [] for p in sizes}
        for _ in range(settings.repeats):  # sizes alternate, so drift hits all alike
            for people in sizes:
                out = run_json("bench.profile_scale", "run",
                               str(Path(tmp) / f"profiles-{people}.db"), str(people),
                               str(messages))
                rates[people].append(out["messages_per_s"])
                peaks[people].append(out["peak_mb"])
    for people in sizes:
        found[people] = {"messages_per_s": sorted(rates[people])[len(rates[people]) // 2],
                         "peak_mb": max(peaks[people])}
    base = sizes[0]
    rows: list[Row] = []
    for people in sizes:
        rows.append(Row("profile store", f"{people:,} known profiles: accept, 100/call",
                        "msg/s", found[people]["messages_per_s"],
                        found[base]["messages_per_s"] if people != base else None,
                        f"{base:,} known profiles" if people != base else ""))
    for people in sizes:
        rows.append(Row("profile store", f"{people:,} known profiles: peak RSS", "MB",
                        found[people]["peak_mb"],
                        found[base]["peak_mb"] if people != base else None,
                        f"{base:,} known profiles" if people != base else ""))
    return Outcome(rows=rows, detail={"messages": messages, "sizes": sizes,
                                      "build_seconds": build_seconds,
                                      "results": {str(p): found[p] for p in sizes}})


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(Path(sys.argv[2]), int(sys.argv[3]))
        print(json.dumps({"built": int(sys.argv[3])}))
    else:
        print(json.dumps(run(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
