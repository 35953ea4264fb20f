"""Scale: the one-message-per-request delivery benchmark with more workers, as a ratio to one.

(a) delivery concurrency 1, 2 and 4 in one process (slots of one destination's worker);
(b) 1, 2 and 4 delivery processes (`python -m bench.scale <db> <url>`, each a deliver_once
    with concurrency 4) sharing one SQLite outbox file, as several daemons on one machine
    would. Processes import and open the outbox first, then wait for "go" on stdin, so the
    timing covers delivery only;
(c) 1, 2 and 4 real `crossdock run` daemons (delivery concurrency 4, collector off) sharing
    one PostgreSQL outbox, in a schema of its own dropped afterwards. Four daemons start once,
    on an empty outbox, after (a) and (b); daemon i delivers destination pg-k for each level
    k > i, so the rows of pg-k are delivered by exactly k daemons while the others idle (as
    every daemon does between runs: a lease query per slot each 0.5 s poll). Once every
    daemon LISTENs for new rows (seen in pg_stat_activity by their application_name) and one
    untimed warm-up run per level has opened their connections, N rows for pg-k are enqueued
    in one transaction. Timed: from that commit (its NOTIFY wakes the daemons) until the sink
    has received all N requests; start-up is not timed, leasing, sending and acking are (the
    acks of the last few land just after the clock stops). Then every row must be delivered
    exactly once (delivered, attempts 1, N requests at the sink) or the run raises, and the
    table is emptied for the next run. The database is $CROSSDOCK_TEST_PG (the tests'
    server, postgresql://postgres@127.0.0.1:5432/test by default); when it is unreachable (c)
    is skipped and the JSON's `daemons_skipped` says why.

All daemons and processes share the machine with the sink and the database (2 cores here):
the ratios say how far more workers help on one machine, not across machines.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bench.common import (
    PG_URL,
    ROOT,
    Outcome,
    Row,
    Settings,
    child_env,
    elapsed,
    sample_message,
    sink,
    webhook_raw,
)
from bench.delivery import BATCH, DEST, fill, run_ours, webhook_config_one
from crossdock.outbox.base import NewRow
from crossdock.outbox.dsn import redact
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.outbox.postgres import PostgresOutbox

LEVELS = (1, 2, 4)
#: bounds that turn a stuck daemon into a clear error; not speed assertions
READY_TIMEOUT = 60.0
DELIVER_TIMEOUT = 120.0


def run_processes(url: str, messages: int, count: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.db"
        fill(db, messages)
        procs = [subprocess.Popen([sys.executable, "-m", "bench.scale", str(db), url], cwd=ROOT,
                                  env=child_env(), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for _ in range(count)]
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "READY":
                raise RuntimeError("scale worker did not start")
        start = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        delivered = 0
        for p in procs:
            out, _ = p.communicate(timeout=600)
            delivered += json.loads(out.strip().splitlines()[-1])["delivered"]
        seconds = elapsed(start)
    if delivered != messages:
        raise RuntimeError(f"scale: {count} processes delivered {delivered} of {messages}")
    return delivered, seconds


class DaemonFleet:
    """Four `crossdock run` daemons sharing one PostgreSQL outbox (see (c) above)."""

    def __init__(self, outbox_url: str, sink_url: str, workdir: Path) -> None:
        self.outbox = PostgresOutbox(outbox_url)  # applies the migrations once, up front
        self.outbox_url = outbox_url
        self.sink_url = sink_url
        self.workdir = workdir
        self.app = f"crossdock-bench-{uuid.uuid4().hex[:8]}"
        self.log = workdir / "daemons.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the daemons (daemon i delivers `_destination(k)` for every level k > i)
        and wait until each LISTENs for new rows."""
        with self.log.open("ab") as out:
            for i in range(max(LEVELS)):
                names = tuple(_destination(k) for k in LEVELS if i < k)
                raw = webhook_raw(self.outbox_url, f"{self.sink_url}/hook", names=names,
                                  batch=False, concurrency=4, batch_size=BATCH)
                raw["collector"] = {"enabled": False}
                config = self.workdir / f"daemon{i}.yaml"
                config.write_text(yaml.safe_dump(raw))
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "crossdock.cli", "run", "-c", str(config)],
                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                    env=child_env(PGAPPNAME=self.app, CROSSDOCK_LOAD_PLUGINS="webhook")))
        self._wait(lambda: self._listening() == len(self.procs), "the daemons to LISTEN",
                   READY_TIMEOUT)

    def close(self) -> None:
        stop_daemons(self.procs)
        self.outbox.close()

    def run(self, messages: int, count: int) -> tuple[int, float]:
        """Time `count` daemons delivering `messages` rows: from the enqueue's commit until
        the sink has them all. Raises unless each was delivered exactly once."""
        name = _destination(count)
        _sink_reset(self.sink_url)
        self.outbox.enqueue([NewRow(name, f"bench-{i}", sample_message(i))
                             for i in range(messages)], now=time.time() - 1)
        start = time.perf_counter()
        self._wait(lambda: _sink_requests(self.sink_url) >= messages,
                   f"the sink to receive {messages} messages", DELIVER_TIMEOUT, interval=0.02)
        seconds = elapsed(start)
        self._wait(lambda: self._delivered(name)[0] >= messages, "the last acks",
                   DELIVER_TIMEOUT)
        delivered, most_attempts = self._delivered(name)
        received = _sink_requests(self.sink_url)
        if (delivered, most_attempts, received) != (messages, 1, messages):
            raise RuntimeError(
                f"scale: {count} daemons: {delivered} of {messages} rows delivered (at most "
                f"{most_attempts} attempts), {received} received by the sink")
        with self.outbox.transaction() as tx:
            tx.execute("TRUNCATE outbox")  # the next run starts from an empty table
        return messages, seconds

    def _listening(self) -> int:
        with self.outbox.transaction() as tx:
            found = tx.conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND query = %s", [self.app, self.outbox.listen_statement.as_string(tx.conn)]
            ).fetchone()
        return int(found[0]) if found else 0

    def _delivered(self, name: str) -> tuple[int, int]:
        with self.outbox.transaction() as tx:
            found = tx.conn.execute(
                "SELECT count(*), coalesce(max(attempts), 0) FROM outbox "
                "WHERE destination = %s AND state = 'delivered'", [name]).fetchone()
        return (int(found[0]), int(found[1])) if found else (0, 0)

    def _wait(self, done: Callable[[], bool], what: str, timeout: float,
              interval: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            dead = [p.returncode for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"daemons exited ({dead})" if dead else f"gave up after {timeout:g}s"
                raise RuntimeError(
                    f"scale: waiting for {what}: {why}; outbox rows by state "
                    f"{self._states()}, sink received {_sink_requests(self.sink_url)}; "
                    f"daemon log:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(interval)

    def _states(self) -> dict[str, int]:
        with self.outbox.transaction() as tx:
            found = tx.conn.execute("SELECT state, count(*) FROM outbox GROUP BY state")
            return {state: int(n) for state, n in found.fetchall()}


def _destination(level: int) -> str:
    return f"pg-{level}"


@contextmanager
def daemon_fleet(url: str, sink_url: str) -> Iterator[DaemonFleet | str]:
    """A DaemonFleet on a fresh schema of the database at `url` (dropped on exit), or, when
    the server is unreachable, the reason as a string."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        yield f"PostgreSQL at {redact(url)} is unreachable: {' '.join(str(exc).split())}"
        return
    with (temporary_schema(url, prefix="crossdock_bench") as outbox_url,
          tempfile.TemporaryDirectory() as tmp):
        fleet = DaemonFleet(outbox_url, sink_url, Path(tmp))
        try:
            fleet.start()
            yield fleet
        finally:
            fleet.close()


def _sink_requests(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as response:
        return int(json.loads(response.read())["requests"])


def _sink_reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/_reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def stop_daemons(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (the daemons finish what they hold and deregister), then wait."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def worker(db: str, url: str) -> None:
    from crossdock.delivery import deliver_once, make_client
    from crossdock.outbox.sqlite import SQLiteOutbox

    loaded = webhook_config_one(Path(db), url, batch=False, concurrency=4)
    outbox = SQLiteOutbox(db)
    print("READY", flush=True)
    sys.stdin.readline()

    async def main() -> int:
        client = make_client(max_connections=100, allow_private_network=True)  # on 127.0.0.1
        try:
            report = await deliver_once(loaded, outbox, client=client)
        finally:
            await client.aclose()
        return report.delivered

    print(json.dumps({"delivered": asyncio.run(main())}), flush=True)


def bench(settings: Settings, pg_url: str = PG_URL) -> Outcome:
    messages = settings.size(4_000, 100)
    pg_messages = settings.size(3_000, 100)
    slots: dict[int, list[float]] = {n: [] for n in LEVELS}
    procs: dict[int, list[float]] = {n: [] for n in LEVELS}
    daemons: dict[int, list[float]] = {n: [] for n in LEVELS}
    with sink() as url:
        for _ in range(settings.repeats):
            for n in LEVELS:
                items, seconds = run_ours(url, messages, batch=False, fast=True, concurrency=n)
                slots[n].append(items / seconds)
                items, seconds = run_processes(url, messages, n)
                procs[n].append(items / seconds)
        # Started after (a) and (b), so their idle daemons take nothing from those.
        with daemon_fleet(pg_url, url) as fleet:
            if isinstance(fleet, DaemonFleet):
                for n in LEVELS:  # untimed: each daemon's first connections to the sink
                    fleet.run(min(pg_messages, 400), n)
                for _ in range(settings.repeats):
                    for n in LEVELS:
                        items, seconds = fleet.run(pg_messages, n)
                        daemons[n].append(items / seconds)
    med = {n: sorted(v)[len(v) // 2] for n, v in slots.items()}
    pmed = {n: sorted(v)[len(v) // 2] for n, v in procs.items()}
    rows = [Row("scale", f"concurrency {n}, 1 msg/request", "msg/s", med[n], med[1],
                "concurrency 1") for n in LEVELS[1:]]
    rows += [Row("scale", f"{n} delivery processes, one SQLite outbox", "msg/s", pmed[n],
                 pmed[1], "1 process") for n in LEVELS[1:]]
    detail: dict[str, Any] = {
        "messages": messages, "batch_size": BATCH, "destination": DEST,
        "concurrency_msg_per_s": {str(n): med[n] for n in LEVELS},
        "processes_msg_per_s": {str(n): pmed[n] for n in LEVELS},
    }
    if isinstance(fleet, str):
        detail["daemons_skipped"] = f"PostgreSQL daemons not measured: {fleet}"
        print(f"   scale: {detail['daemons_skipped']}", file=sys.stderr, flush=True)
        return Outcome(rows=rows, detail=detail)
    dmed = {n: sorted(v)[len(v) // 2] for n, v in daemons.items()}
    rows += [Row("scale", f"{n} daemons, one PostgreSQL outbox", "msg/s", dmed[n], dmed[1],
                 "1 daemon") for n in LEVELS[1:]]
    detail["daemons_messages"] = pg_messages
    detail["daemons_msg_per_s"] = {str(n): dmed[n] for n in LEVELS}
    return Outcome(rows=rows, detail=detail)


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
