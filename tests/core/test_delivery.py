"""The delivery engine against a real loopback destination: outcomes, retries, timing rules."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from wait_helpers import until

from crossdock.config import LoadedConfig
from crossdock.daemon import run_daemon
from crossdock.delivery import DeliveryEngine, deliver_once
from crossdock.delivery.backoff import backoff_delay
from crossdock.destination import OutboxItem, PlannedRequest, parse_retry_after
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.scheduler import Scheduler

MakeLoaded = Callable[..., LoadedConfig]


def enqueue(outbox: SQLiteOutbox, n: int, now: float, **payload: Any) -> None:
    outbox.enqueue([NewRow("echo", f"m{i}", {"n": i, **payload}) for i in range(n)], now=now)


def state(outbox: SQLiteOutbox, message_id: str = "m0") -> dict[str, Any]:
    row = outbox.row("echo", message_id)
    assert row is not None
    return row


async def test_a_500_is_retried_after_backoff_then_delivered(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    loaded = make_loaded(echo.url, backoff_base=2.0)
    echo.fake.then(500, "upstream broke")
    enqueue(outbox, 1, clock.now)
    t0 = clock.now

    report = await deliver_once(loaded, outbox, clock=clock, rng=random.Random(3))
    assert (report.delivered, report.retried, report.dead) == (0, 1, 0)
    row = state(outbox)
    expected_delay = backoff_delay(1, base=2.0, cap=600.0, rng=random.Random(3))
    assert (row["state"], row["attempts"]) == ("queued", 1)
    assert row["next_attempt_at"] == t0 + expected_delay
    assert row["last_error"] == "HTTP 500: upstream broke"

    # Not due yet: a second run sends nothing.
    assert (await deliver_once(loaded, outbox, clock=clock)).requests == 0
    clock.now = row["next_attempt_at"]
    report = await deliver_once(loaded, outbox, clock=clock)
    assert report.delivered == 1
    row = state(outbox)
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert echo.fake.ids == ["m0", "m0"]
    assert outbox.counts()["echo"].delivered == 1


async def test_429_with_retry_after_is_honoured_exactly(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    echo.fake.then(429, "slow down", {"Retry-After": "7"})
    enqueue(outbox, 1, clock.now)
    await deliver_once(make_loaded(echo.url), outbox, clock=clock)
    row = state(outbox)
    assert row["next_attempt_at"] == clock.now + 7
    assert row["state"] == "queued" and row["attempts"] == 1
    assert outbox.counts()["echo"].retrying == 1


@pytest.mark.parametrize(("header", "delay"), [
    ("99999999", 3600.0),  # capped at delivery.retry_after_max (1h by default)
    ("Fri, 31 Dec 2100 23:59:59 GMT", 3600.0),
    ("2.5", 2.5),
    ("inf", None), ("nan", None), ("-5", None), ("1e400", None), ("soon", None),
    ("", None), ("5 s", None),
])
async def test_an_odd_retry_after_is_capped_or_counts_as_none(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any, header: str,
    delay: float | None,
) -> None:
    # `inf` or 99999999 parked a row for years (past max_age); `nan` or `-5` retried it at
    # once and burned its attempts in a tight loop. None here: the backoff applies.
    echo.fake.then(429, "slow down", {"Retry-After": header})
    enqueue(outbox, 1, clock.now)
    await deliver_once(make_loaded(echo.url, backoff_base=4.0), outbox, clock=clock,
                       rng=random.Random(5))
    row = state(outbox)
    expected = delay if delay is not None else backoff_delay(
        1, base=4.0, cap=600.0, rng=random.Random(5))
    assert row["next_attempt_at"] - clock.now == pytest.approx(expected)
    assert (row["state"], row["attempts"]) == ("queued", 1)


async def test_a_retry_after_never_reaches_past_max_age(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    echo.fake.then(503, "maintenance", {"Retry-After": "7200"})
    enqueue(outbox, 1, clock.now - 600)
    await deliver_once(make_loaded(echo.url, max_age="30m"), outbox, clock=clock)
    assert state(outbox)["next_attempt_at"] == clock.now + 1200  # the budget's last second


def test_parse_retry_after_reads_seconds_and_dates_and_nothing_else() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7") == 7.0 and parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=now) == 10.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0  # past: now
    for junk in (None, "", "inf", "-inf", "nan", "-5", "+5", "1e3", "0x10", "1_000", "soon",
                 "Tue, 99 Nov 2023 99:99:99 GMT"):
        assert parse_retry_after(junk, now=now) is None, junk


async def test_a_400_is_a_dead_letter_with_the_body_after_one_attempt(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    echo.fake.then(400, '{"error": "email is not valid"}')
    enqueue(outbox, 1, clock.now)
    report = await deliver_once(make_loaded(echo.url), outbox, clock=clock)
    assert report.dead == 1
    (letter,) = outbox.dead_letters("echo")
    assert letter.attempts == 1
    assert letter.reason == 'HTTP 400: {"error": "email is not valid"}'
    assert outbox.counts()["echo"].last_error == letter.reason


async def test_a_timeout_is_retried_and_gives_up_after_max_attempts(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    loaded = make_loaded(echo.url, timeout=0.2, max_attempts=2)
    echo.fake.delay = 1.0
    enqueue(outbox, 1, clock.now)
    report = await deliver_once(loaded, outbox, clock=clock, rng=random.Random(1))
    assert report.retried == 1
    row = state(outbox)
    assert row["last_error"].startswith("timeout after 0.2s")
    clock.now = row["next_attempt_at"]
    report = await deliver_once(loaded, outbox, clock=clock)
    assert report.dead == 1
    (letter,) = outbox.dead_letters()
    assert letter.attempts == 2
    assert letter.reason.startswith("gave up after 2 attempts: timeout after 0.2s")
    assert "POST http://127.0.0.1" in letter.reason


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retried(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    port = closed_port()
    enqueue(outbox, 1, clock.now)
    report = await deliver_once(make_loaded(f"http://127.0.0.1:{port}/hook"), outbox,
                                clock=clock)
    assert (report.retried, report.dead) == (1, 0)
    row = state(outbox)
    assert row["state"] == "queued"
    assert row["last_error"].startswith("connection error sending POST")


async def test_errors_name_the_origin_not_the_path_that_may_be_a_secret(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    # A Slack webhook URL's path is its secret (a SecretStr setting); the last error is
    # shown by `crossdock status`, logged and stored, and it was printed whole.
    port = closed_port()
    enqueue(outbox, 1, clock.now)
    url = f"http://user:pw@127.0.0.1:{port}/services/T000/B000/SECRET?token=t"
    await deliver_once(make_loaded(url), outbox, clock=clock)
    error = state(outbox)["last_error"]
    assert error.startswith(f"connection error sending POST http://127.0.0.1:{port}/…: ")
    assert "SECRET" not in error and "pw" not in error and "token" not in error


@pytest.mark.parametrize("fast", [True, False], ids=["aiohttp", "httpx"])
async def test_the_rate_limit_spaces_requests_on_the_engine_clock(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any, fast: bool,
) -> None:
    from crossdock.delivery.transport import make_client

    loaded = make_loaded(echo.url, rate_limit=5, batch_size=1, concurrency=1)
    enqueue(outbox, 12, clock.now)
    t0 = clock.now
    sent_at: list[float] = []

    async def record(request: httpx.Request) -> None:
        sent_at.append(clock.now)

    client = make_client(fast=fast, allow_private_network=True)  # the fake is on 127.0.0.1
    client.event_hooks["request"] = [record]
    async with client:
        report = await deliver_once(loaded, outbox, client=client, clock=clock,
                                    sleep=clock.sleep)
    assert report.delivered == 12 and report.requests == 12
    assert [t - t0 for t in sent_at] == pytest.approx([i * 0.2 for i in range(12)], abs=1e-6)
    for start in sent_at:
        assert sum(1 for t in sent_at if start <= t < start + 1.0) <= 5


async def test_concurrency_caps_requests_in_flight(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded,
) -> None:
    echo.fake.delay = 0.05
    enqueue(outbox, 15, 0.0)
    report = await deliver_once(make_loaded(echo.url, batch_size=1, concurrency=3), outbox)
    assert report.delivered == 15
    assert echo.fake.max_in_flight == 3


async def test_items_are_batched_up_to_batch_size(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded,
) -> None:
    enqueue(outbox, 25, 0.0)
    report = await deliver_once(make_loaded(echo.url, batch_size=10, concurrency=1), outbox)
    assert report.delivered == 25
    assert [len(b) for b in echo.fake.batches] == [10, 10, 5]
    assert sorted(echo.fake.ids) == sorted(f"m{i}" for i in range(25))


async def test_a_rejected_item_is_dead_and_its_batch_mates_are_delivered(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded,
) -> None:
    enqueue(outbox, 2, 0.0)
    outbox.enqueue([NewRow("echo", "bad", {"reject": "no email address"})], now=0.0)
    report = await deliver_once(make_loaded(echo.url), outbox)
    assert (report.delivered, report.dead) == (2, 1)
    (letter,) = outbox.dead_letters()
    assert (letter.message_id, letter.reason) == ("bad", "rejected: no email address")


async def test_each_attempt_reaches_the_plugin_with_its_own_time(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    # Plugins are pure, so the time a destination wants signed (Standard Webhooks'
    # webhook-timestamp, Meta's appsecret_time) comes from the engine: the attempt's, not the
    # row's creation or the message's.
    loaded = make_loaded(echo.url)
    echo.fake.then(503, "down")
    enqueue(outbox, 1, clock.now - 3600)
    first = clock.now
    await deliver_once(loaded, outbox, clock=clock, rng=random.Random(1))
    clock.now = state(outbox)["next_attempt_at"] + 86_400
    report = await deliver_once(loaded, outbox, clock=clock)
    assert report.delivered == 1
    assert [b[0]["attempted_at"] for b in echo.fake.batches] == [first, clock.now]


async def test_a_value_the_plugin_leaves_out_is_counted_by_field_and_the_item_sent(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded,
    caplog: pytest.LogCaptureFixture,
) -> None:
    enqueue(outbox, 2, 0.0, refuse="PHONE")
    enqueue_one = NewRow("echo", "other", {"refuse": "ADDRESS"})
    outbox.enqueue([enqueue_one], now=0.0)
    with caplog.at_level("WARNING", logger="crossdock.delivery"):
        report = await deliver_once(make_loaded(echo.url), outbox)
    assert report.delivered == 3 and report.dead == 0
    assert report.destinations["echo"].refused == {"PHONE": 2, "ADDRESS": 1}
    assert "values left out: ADDRESS 1, PHONE 2" in str(report)
    # One line per field and batch, with an example, not one per person.
    lines = [r.getMessage() for r in caplog.records if "left out of" in r.getMessage()]
    assert sorted(lines) == ["echo: ADDRESS left out of 1 item(s), e.g. other: not usable",
                             "echo: PHONE left out of 2 item(s), e.g. m0: not usable"]


async def test_an_old_item_is_given_up_after_max_age(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    echo.fake.then(503, "down")
    enqueue(outbox, 1, clock.now - 7200)
    await deliver_once(make_loaded(echo.url, max_age="1h", min_attempts=1), outbox,
                       clock=clock)
    (letter,) = outbox.dead_letters()
    assert letter.reason.startswith("gave up after 7200s (max_age 3600s), 1 attempts: HTTP 503")


class Misbehaving:
    """A plugin that fails in the ways a buggy plugin might."""

    def __init__(self, plugin: Any, mode: str) -> None:
        self.plugin, self.mode = plugin, mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self.plugin, name)

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Any]:
        if self.mode == "build":
            raise KeyError("email")
        if self.mode == "poison" and any("poison" in i.payload for i in items):
            raise KeyError("email")
        return list(self.plugin.build_requests(items))

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Any:
        if self.mode == "classify":
            raise ValueError("unexpected body")
        extra = 1 if self.mode == "count" else 0
        return [self.plugin.classify(planned, response)] * (len(planned.items) + extra)


@pytest.mark.parametrize(("mode", "error"), [
    ("build", "plugin echo build_requests failed: KeyError: 'email'"),
    ("classify", "plugin echo classify failed on HTTP 200: ValueError: unexpected body"),
    ("count", "plugin echo classify returned 3 outcomes for 2 items (HTTP 200)"),
])
async def test_a_misbehaving_plugin_gets_its_items_retried_with_the_error(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded, mode: str, error: str,
) -> None:
    loaded = make_loaded(echo.url)
    destination = loaded.destinations[0]
    destination.plugin = Misbehaving(destination.plugin, mode)  # type: ignore[assignment]
    enqueue(outbox, 2, 0.0)
    report = await deliver_once(loaded, outbox)
    assert report.retried == 2
    assert state(outbox, "m1")["last_error"] == error
    assert outbox.counts()["echo"].retrying == 2


async def test_an_item_the_plugin_cannot_build_does_not_hold_back_its_batch_mates(
    echo: Any, outbox: SQLiteOutbox, make_loaded: MakeLoaded,
) -> None:
    loaded = make_loaded(echo.url, batch_size=10, concurrency=1, max_attempts=2)
    destination = loaded.destinations[0]
    destination.plugin = Misbehaving(destination.plugin, "poison")  # type: ignore[assignment]
    enqueue(outbox, 4, 0.0)
    outbox.enqueue([NewRow("echo", "bad", {"poison": True})], now=0.0)
    report = await deliver_once(loaded, outbox)
    assert (report.delivered, report.retried) == (4, 1)
    assert sorted(echo.fake.ids) == [f"m{i}" for i in range(4)]
    assert state(outbox, "bad")["last_error"] == (
        "plugin echo build_requests failed: KeyError: 'email'")


class WatchedOutbox(SQLiteOutbox):
    """The SQLite outbox, counting the times a worker has looked for rows to lease."""

    leases = 0

    def lease(self, destination: str, limit: int, lease_seconds: float, owner: str,
              now: float | None = None, *, ordered: bool = True) -> list[OutboxItem]:
        self.leases += 1
        return super().lease(destination, limit, lease_seconds, owner, now, ordered=ordered)


async def test_the_engine_wakes_on_new_rows_and_stops_releasing_in_flight_leases(
    echo: Any, tmp_path: Path, make_loaded: MakeLoaded,
) -> None:
    loaded = make_loaded(echo.url, batch_size=1, concurrency=1)
    outbox = WatchedOutbox(tmp_path / "watched.db")
    # A poll interval far beyond the test: only wake() can make the worker look again.
    engine = DeliveryEngine(loaded, outbox, poll_interval=3600)
    await engine.start()
    # The worker found nothing and waits (leasing is synchronous: once it has looked, it is
    # parked on its wake-up event); a row it found on that first look would prove nothing.
    await until(lambda: outbox.leases >= 1, "the worker's first look at the outbox")
    enqueue(outbox, 1, 0.0)
    engine.wake("echo")
    await until(lambda: engine.report.delivered >= 1, "the woken worker's delivery", 10)
    assert engine.report.delivered == 1

    echo.fake.delay = 1.5
    outbox.enqueue([NewRow("echo", "slow", {})], now=0.0)
    engine.wake()
    await until(lambda: bool(echo.fake.in_flight), "the slow request in flight", 10)
    assert state(outbox, "slow")["state"] == "leased"
    await engine.stop(grace=0.1)
    row = state(outbox, "slow")
    assert (row["state"], row["attempts"], row["lease_owner"]) == ("queued", 0, None)
    outbox.close()


async def test_the_scheduler_wakes_due_destinations_and_cleans_up(
    outbox: SQLiteOutbox, make_loaded: MakeLoaded, clock: Any,
) -> None:
    loaded = make_loaded("http://127.0.0.1:9/unused", )
    woken: list[str | None] = []

    class Engine:
        def wake(self, destination: str | None = None) -> None:
            woken.append(destination)

    scheduler = Scheduler(loaded, outbox, Engine(), clock=clock)
    assert await scheduler.sweep_due() == []
    enqueue(outbox, 2, clock.now)
    assert await scheduler.sweep_due() == ["echo"] and woken == ["echo"]
    a, b = outbox.lease("echo", 2, 60, "w", now=clock.now)
    outbox.ack([a.id, b.id], "w", now=clock.now)
    assert await scheduler.cleanup() == 0
    clock.now += loaded.config.outbox.delivered_retention + 1
    assert await scheduler.cleanup() == 2
    assert outbox.counts()["echo"].delivered == 2
    with pytest.raises(ValueError, match="already exists"):
        scheduler.add_timer("cleanup", 5, scheduler.cleanup)


async def test_the_daemon_delivers_rows_another_process_wrote_and_stops_on_request(
    echo: Any, tmp_path: Path, make_loaded: MakeLoaded,
) -> None:
    import subprocess
    import sys

    loaded = make_loaded(echo.url)
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(loaded, stop_event=stop, poll_interval=0.05))
    script = ("import sys\nfrom crossdock.outbox.sqlite import SQLiteOutbox\n"
              "from crossdock.outbox.base import NewRow\n"
              "box = SQLiteOutbox(sys.argv[1])\n"
              "box.enqueue([NewRow('echo', f'p{i}', {'i': i}) for i in range(5)])\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(tmp_path / "crossdock.db"),
        stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    for _ in range(250):
        if len(echo.fake.ids) >= 5:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(daemon, 30)
    assert sorted(echo.fake.ids) == [f"p{i}" for i in range(5)]
    check = SQLiteOutbox(tmp_path / "crossdock.db")
    assert check.counts()["echo"].delivered == 5
    check.close()
