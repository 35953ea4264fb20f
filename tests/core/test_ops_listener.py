"""The ops listener of a real `crossdock run` process: /healthz, /readyz and /metrics on their
own address, scraped over HTTP and read with prometheus_client's own parser. The daemon has
profiles and an audience (watched on change): the profile gauges once vanished from /metrics
whenever an audience was configured (the collector looked for the store's class, and the
audience watcher wrapped it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlite_utils import Database

from crossdock.outbox.migrations import MIGRATIONS_TABLE
from crossdock.plugins.webhook.fake import WebhookFake, make_app
from crossdock.testing.fakeserver import RunningServer, serve
from crossdock.testing.pipeline import fake_destination_config

WRITE_KEY = "wk-ops-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    collector: str
    ops: str
    outbox: Path
    log: Path
    fake: WebhookFake

    def scrape(self, url: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                     float]:
        """Every sample of /metrics, parsed by prometheus_client: (name, labels) -> value."""
        answer = httpx.get(f"{url or self.ops}/metrics", timeout=10)
        assert answer.status_code == 200, answer.text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(answer.text)
                for s in family.samples}

    def wait_for(self, found: Callable[[dict[tuple[str, tuple[tuple[str, str], ...]],
                                             float]], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not found(self.scrape()):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"never {what}: {self.log.read_text()}"
            time.sleep(0.05)

    def send(self, message_id: str, user_id: str) -> None:
        answer = httpx.post(f"{self.collector}/v1/track", auth=(WRITE_KEY, ""), timeout=10,
                            json={"messageId": message_id, "userId": user_id,
                                  "event": "Ordered", "traits": {"vip": True}})
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[WebhookFake, RunningServer]]:
    state = WebhookFake()
    with serve(make_app(state)) as server:
        yield state, server


@pytest.fixture(scope="module")
def daemon(fake: tuple[WebhookFake, RunningServer],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    state, server = fake
    tmp = tmp_path_factory.mktemp("ops")
    collector_port, ops_port = free_port(), free_port()
    config = fake_destination_config(tmp / "outbox.db", "hook", {
        "plugin": "webhook", "settings": {"url": f"{server.url}/hook"},
        # a retry comes due at once, so the test never waits out a backoff
        "delivery": {"ordered": False, "backoff_base": 0.01, "backoff_max": 0.01}})
    config["collector"] = {"host": "127.0.0.1", "port": collector_port,
                           "write_keys": [WRITE_KEY]}
    config["ops"] = {"port": ops_port}  # the host is the default: 127.0.0.1
    config["audiences"] = {"vips": {"condition": "vip", "destinations": ["hook"]}}
    path = tmp / "crossdock.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp / "daemon.log"
    env = {**os.environ, "CROSSDOCK_LOAD_PLUGINS": "webhook"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "crossdock.cli", "run", "-c",
                                    str(path)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=tmp)
    running = Daemon(process, f"http://127.0.0.1:{collector_port}",
                     f"http://127.0.0.1:{ops_port}", tmp / "outbox.db", log, state)
    try:
        deadline = time.monotonic() + 60
        while "crossdock running" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()


def test_healthz_and_readyz_answer_on_the_ops_address(daemon: Daemon) -> None:
    assert f"ops {daemon.ops}" in daemon.log.read_text()
    health = httpx.get(f"{daemon.ops}/healthz", timeout=10)
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    ready = httpx.get(f"{daemon.ops}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"outbox": "ok", "schema": "ok",
                                                       "workers": "ok"}}
    # Only its three paths, only read.
    assert httpx.get(f"{daemon.ops}/v1/track", timeout=10).status_code == 404
    assert httpx.post(f"{daemon.ops}/metrics", timeout=10).status_code == 405


def test_metrics_count_deliveries_retries_dead_letters_and_their_latency(
    daemon: Daemon,
) -> None:
    hook = (("destination", "hook"),)
    # The first message: 500 (retried), then 400 (dead, at its second try).
    daemon.fake.script([500, 400])
    daemon.send("ops-1", "ada")
    daemon.wait_for(lambda m: m.get(("crossdock_deliveries_total",
                                     (*hook, ("outcome", "dead")))) == 1, "dead")
    daemon.send("ops-2", "grace")
    daemon.wait_for(lambda m: m.get(("crossdock_deliveries_total",
                                     (*hook, ("outcome", "delivered")))) == 1, "delivered")
    metrics = daemon.scrape()
    assert metrics[("crossdock_deliveries_total", (*hook, ("outcome", "retry")))] == 1
    # tries until settled: 2 for the dead letter, 1 for the delivered message
    assert metrics[("crossdock_delivery_attempts_count", hook)] == 2
    assert metrics[("crossdock_delivery_attempts_sum", hook)] == 3
    assert metrics[("crossdock_delivery_attempts_bucket", (*hook, ("le", "1.0")))] == 1
    # three requests to the destination, each timed; one message delivered, its wait timed
    assert metrics[("crossdock_destination_request_seconds_count", hook)] == 3
    assert metrics[("crossdock_destination_request_seconds_sum", hook)] > 0
    assert metrics[("crossdock_accept_to_deliver_seconds_count", hook)] == 1
    assert metrics[("crossdock_accept_to_deliver_seconds_bucket",
                    (*hook, ("le", "+Inf")))] == 1
    # the queue, read from the outbox at scrape time
    assert metrics[("crossdock_outbox_waiting", hook)] == 0
    assert metrics[("crossdock_outbox_oldest_waiting_seconds", hook)] == 0
    assert metrics[("crossdock_outbox_rows", (*hook, ("state", "dead")))] == 1
    # the collector's requests by status, counted by the collector, shown here too
    assert metrics[("crossdock_collector_requests_total",
                    (("endpoint", "/v1/track"), ("status", "200")))] == 2
    # the process
    assert metrics[("process_cpu_seconds_total", ())] > 0
    assert metrics[("process_resident_memory_bytes", ())] > 0


def test_profile_gauges_stay_with_an_audience_configured(daemon: Daemon) -> None:
    daemon.send("ops-3", "linus")
    daemon.wait_for(lambda m: m.get(("crossdock_profiles", (("kind", "known"),)), 0) >= 1,
                    "a known profile")
    # The collector's own /metrics lost them too (it checked the store's class).
    collector = daemon.scrape(daemon.collector)
    assert collector[("crossdock_profiles", (("kind", "known"),))] >= 1
    ops = daemon.scrape()
    assert ("crossdock_sessions_open", ()) in ops
    assert ("crossdock_profile_merges", ()) in ops


def test_readyz_fails_when_the_schema_is_not_this_codes(daemon: Daemon) -> None:
    # A newer Crossdock upgraded the outbox under this daemon.
    migrations = Database(daemon.outbox).table(MIGRATIONS_TABLE)
    migrations.insert({"name": "m999_from_the_future", "applied_at": time.time()})
    try:
        ready = httpx.get(f"{daemon.ops}/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"] == {
            "outbox": "ok", "schema": "migration m999_from_the_future applied by a newer "
                                      "Crossdock", "workers": "ok"}
        # Alive all the same: a restart would not help.
        assert httpx.get(f"{daemon.ops}/healthz", timeout=10).status_code == 200
    finally:
        migrations.delete_where("name = ?", ["m999_from_the_future"])
        migrations.db.close()
    assert httpx.get(f"{daemon.ops}/readyz", timeout=10).status_code == 200


async def test_the_ops_listener_serves_with_the_collector_off_and_a_taken_port_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # In-process: two daemons, the collector off in both; the second finds the first's ops
    # port taken, says so and forwards all the same.
    import asyncio
    import logging

    from crossdock.daemon import run_daemon
    from crossdock.loader import parse_config

    caplog.set_level(logging.INFO, logger="crossdock")
    port = free_port()
    first_ready, second_ready = asyncio.Event(), asyncio.Event()
    stop_first, stop_second = asyncio.Event(), asyncio.Event()

    def daemon(name: str, ready: asyncio.Event, stop: asyncio.Event) -> asyncio.Task[None]:
        loaded = parse_config({"outbox": {"url": f"sqlite:///{name}.db"},
                               "collector": {"enabled": False}, "ops": {"port": port}},
                              base_dir=tmp_path, env={})
        return asyncio.create_task(run_daemon(loaded, stop_event=stop,
                                              on_ready=lambda *_: ready.set()))

    first = daemon("first", first_ready, stop_first)
    try:
        await asyncio.wait_for(first_ready.wait(), 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).json()["status"] == "ok"
            assert "process_start_time_seconds" in (await client.get("/metrics")).text
        second = daemon("second", second_ready, stop_second)
        await asyncio.wait_for(second_ready.wait(), 30)
        stop_second.set()
        await asyncio.wait_for(second, 30)
    finally:
        stop_first.set()
        await asyncio.wait_for(first, 30)
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if line.startswith("ops listener: cannot listen on "
                                                      f"127.0.0.1:{port}")]
    assert len([line for line in lines if "collector off, ops off" in line]) == 1
