"""Issue 6 acceptance: four `crossdock run` processes share one PostgreSQL outbox; 20,000
messages (CROSSDOCK_FLEET_MESSAGES; the suite's default run sends 6,000) go to three webhook
destinations; two daemons are SIGKILLed mid-run. Every message must arrive at least once, and
a message may arrive twice only if its row's lease expired (the row was leased again:
attempts > 1). The duplicate count is reported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from aiohttp import web

from crossdock.outbox import NewRow
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.outbox.postgres import PostgresOutbox
from crossdock.testing.fakeserver import serve

PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: the acceptance run is 20,000; 6,000 keeps the suite short and still spans the kill
MESSAGES = int(os.environ.get("CROSSDOCK_FLEET_MESSAGES", "6000"))
DESTINATIONS = ["hook-a", "hook-b", "hook-c"]
DAEMONS = 4
LEASE = 5.0
#: a generous bound so a broken fleet fails instead of hanging; not a speed assertion
DEADLINE = 150.0

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


class Receiver:
    """Counts deliveries per (path, messageId); thread-safe (the server runs in a thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def app(self) -> web.Application:
        async def receive(request: web.Request) -> web.Response:
            body: Any = await request.json()
            items = body["batch"] if isinstance(body, dict) and "batch" in body else [body]
            name = request.match_info["name"]
            with self.lock:
                for item in items:
                    self.counts[(name, item["messageId"])] += 1
            return web.json_response({"ok": True})

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/{name}", receive)
        return app

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def distinct(self) -> int:
        with self.lock:
            return len(self.counts)


@pytest.fixture
def pg_url() -> Iterator[str]:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}")
    with temporary_schema(PG_URL, prefix="crossdock_fleet") as url:
        yield url


def _config(path: Path, outbox_url: str, receiver_url: str) -> Path:
    destinations = {
        name: {
            "plugin": "webhook",
            "settings": {"url": f"{receiver_url}/{name}", "batch": True},
            "delivery": {"lease": f"{LEASE:g}s", "batch_size": 100, "concurrency": 2,
                         "allow_private_network": True},
        }
        for name in DESTINATIONS
    }
    config = {"outbox": {"url": outbox_url}, "collector": {"enabled": False},
              "destinations": destinations}
    path.write_text(yaml.safe_dump(config))
    return path


def _messages(path: Path) -> Path:
    with path.open("w") as out:
        for i in range(MESSAGES):
            out.write(json.dumps({"type": "track", "messageId": f"msg-{i:05d}",
                                  "userId": f"user-{i % 500}", "event": "Order Completed",
                                  "properties": {"i": i},
                                  "timestamp": "2024-05-01T12:00:00Z"}) + "\n")
    return path


def _crossdock(*args: str) -> list[str]:
    return [sys.executable, "-m", "crossdock.cli", *args]


def _delivered(outbox: PostgresOutbox) -> int:
    return sum(c.delivered for c in outbox.counts().values())


def test_four_daemons_two_killed_deliver_every_message_at_least_once(
    pg_url: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    daemons: list[subprocess.Popen[bytes]] = []
    with serve(receiver.app()) as server:
        config = _config(tmp_path / "crossdock.yaml", pg_url, server.url)
        upgrade = subprocess.run(_crossdock("db", "upgrade", "-c", str(config)),
                                 capture_output=True, text=True, timeout=60)
        assert upgrade.returncode == 0, upgrade.stderr
        assert "pg_001_initial" in upgrade.stdout
        logs = [(tmp_path / f"daemon{i}.log").open("wb") for i in range(DAEMONS)]
        outbox = PostgresOutbox(pg_url)
        try:
            daemons = [subprocess.Popen(_crossdock("run", "-c", str(config)),
                                        stdout=log, stderr=subprocess.STDOUT)
                       for log in logs]
            _wait_for(lambda: len(_fleet(outbox)) == DAEMONS, "all daemons registered")
            # Sending runs while the daemons deliver; the kill comes part way through.
            sender = Sender(config, pg_url, tmp_path / "messages.jsonl")
            sender.start()
            total = MESSAGES * len(DESTINATIONS)
            _wait_for(lambda: _delivered(outbox) >= total // 5, "a fifth delivered")
            # The two holding the most leases: their rows must be taken over.
            holders = {pid: leased for pid, leased, _ in _fleet(outbox)}
            victims = sorted(daemons, key=lambda p: -holders.get(p.pid, 0))[:2]
            for proc in victims:
                proc.send_signal(signal.SIGKILL)
            for proc in victims:
                proc.wait(10)
            killed_at = _delivered(outbox)
            assert killed_at < total, "the run ended before the kill; nothing was tested"
            sender.join(DEADLINE)
            assert sender.error is None, sender.error
            assert sender.accepted == MESSAGES
            assert sender.rows == total

            _wait_for(lambda: _delivered(outbox) == total, "every row delivered")
            _wait_for(lambda: receiver.distinct() == total, "the receiver saw every row")

            status = subprocess.run(_crossdock("status", "-c", str(config)),
                                    capture_output=True, text=True, timeout=60)
            assert status.returncode == 0, status.stderr
            assert "daemons on this outbox" in status.stdout

            survivors = [p for p in daemons if p not in victims]
            for proc in survivors:
                proc.send_signal(signal.SIGTERM)
            for proc in survivors:
                assert proc.wait(30) == 0
            states = {pid: state for pid, _, state in _fleet(outbox)}
            assert {states[p.pid] for p in survivors} == {"stopped"}
            assert all(states[p.pid] != "stopped" for p in victims)

            rows = _rows(outbox)
        finally:
            for proc in daemons:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            for log in logs:
                log.close()
            outbox.close()

    expected = {(d, f"msg-{i:05d}") for d in DESTINATIONS for i in range(MESSAGES)}
    assert set(receiver.counts) == expected  # every message, every destination, nothing else
    twice = {key: n - 1 for key, n in receiver.counts.items() if n > 1}
    duplicates = sum(twice.values())
    retaken = {key for key, attempts in rows.items() if attempts > 1}
    # Only a row leased again (its lease expired with a killed daemon) may arrive again,
    # and no more often than it was leased.
    assert set(twice) <= retaken
    assert all(n <= rows[key] - 1 for key, n in twice.items())
    print(f"\nsent with {sender.how}; "
          f"{total} rows delivered by {DAEMONS} daemons ({len(victims)} SIGKILLed after "
          f"{killed_at} deliveries): {duplicates} duplicate deliveries, "
          f"{len(retaken)} rows taken over after an expired lease")


class Sender(threading.Thread):
    """Puts the messages into the outbox while the daemons run: through `crossdock send` when
    the route step is installed, else (until crossdock.route.router lands) by enqueueing the
    routed rows a webhook without templates gets (the message itself) through the outbox API,
    500 messages per transaction as `crossdock send` does."""

    def __init__(self, config: Path, outbox_url: str, path: Path) -> None:
        super().__init__(daemon=True)
        self.config, self.outbox_url, self.path = config, outbox_url, _messages(path)
        self.how = ("crossdock send" if importlib.util.find_spec("crossdock.route.router")
                    else "PostgresOutbox.enqueue (no route step installed)")
        self.accepted = self.rows = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            if self.how == "crossdock send":
                self._send()
            else:
                self._enqueue()
        except Exception as exc:
            self.error = repr(exc)

    def _send(self) -> None:
        sent = subprocess.run(_crossdock("send", "-c", str(self.config), "--quiet",
                                         str(self.path)),
                              capture_output=True, text=True, timeout=DEADLINE)
        if sent.returncode != 0:
            self.error = sent.stderr
            return
        found = re.search(r"accepted (\d+) messages \((\d+) outbox rows\)", sent.stdout)
        assert found is not None, sent.stdout
        self.accepted, self.rows = int(found[1]), int(found[2])

    def _enqueue(self) -> None:
        outbox = PostgresOutbox(self.outbox_url)
        try:
            lines = self.path.read_text().splitlines()
            for start in range(0, len(lines), 500):
                messages = [json.loads(line) for line in lines[start:start + 500]]
                new = outbox.enqueue([NewRow(d, m["messageId"], m)
                                      for m in messages for d in DESTINATIONS])
                self.accepted += len(messages)
                self.rows += new
        finally:
            outbox.close()


def _fleet(outbox: PostgresOutbox) -> list[tuple[int, int, str]]:
    from crossdock.fleet import PostgresFleet

    return [(d.pid, d.leased, d.state) for d in PostgresFleet(outbox).daemons()]


def _rows(outbox: PostgresOutbox) -> dict[tuple[str, str], int]:
    with outbox.transaction() as tx:
        found = tx.conn.execute("SELECT destination, message_id, attempts FROM outbox "
                                "WHERE state = 'delivered'").fetchall()
    return {(d, m): attempts for d, m, attempts in found}


def _wait_for(done: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.2)
