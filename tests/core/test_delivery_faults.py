"""The delivery engine against a destination that breaks: slow answers under short leases,
outages of hours, 500 storms, odd Retry-After values, hangs and connection resets. The
destination is the webhook contract fake over real loopback HTTP, with faults injected by the
fakes' shared scripting (crossdock.testing.fakescript); outboxes are real SQLite files and
schemas on the test PostgreSQL server. Simulated time comes from the engine's injectable
clock; the one real-time outage test is marked slow."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wait_helpers import until

from crossdock.config import LoadedConfig
from crossdock.delivery import DeliveryEngine
from crossdock.loader import parse_config
from crossdock.outbox import NewRow, Outbox, open_outbox
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.webhook.fake import WebhookFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakescript import Fault
from crossdock.testing.fakeserver import RunningServer, free_port, serve

HOOK = "hook"


@pytest.fixture
def opened(outbox_url: str) -> Iterator[Callable[[], Outbox]]:
    """open() gives a new handle on the test's outbox (one per daemon); all closed after."""
    handles: list[Outbox] = []

    def open_one() -> Outbox:
        handles.append(open_outbox(outbox_url))
        return handles[-1]

    yield open_one
    for handle in handles:
        handle.close()


@pytest.fixture
def webhook() -> Iterator[tuple[WebhookFake, RunningServer]]:
    fake = WebhookFake()
    with serve(make_app(fake)) as server:
        yield fake, server


def config(tmp_path: Path, outbox_url: str, url: str, **delivery: Any) -> LoadedConfig:
    raw = {"outbox": {"url": outbox_url},
           "destinations": {HOOK: {"plugin": "webhook", "settings": {"url": url},
                                   "delivery": {"allow_private_network": True, **delivery}}}}
    return parse_config(raw, base_dir=tmp_path, env={})


def people_rows(people: int, each: int) -> list[NewRow]:
    """`people` times `each` rows, interleaved as traffic arrives; each payload says whose and
    which of theirs it is."""
    return [NewRow(HOOK, f"m-{p}-{k}", {"person": p, "seq": k}, f"u:{p}")
            for k in range(each) for p in range(people)]


def arrivals(fake: WebhookFake) -> dict[int, list[int]]:
    """Per person, the seq of each message the fake accepted, in arrival order."""
    order: dict[int, list[int]] = {}
    for entry in fake.received:
        order.setdefault(entry["body"]["person"], []).append(entry["body"]["seq"])
    return order


# -- item 1: a slow destination, short leases, two daemons, no duplicates ----------------


async def test_a_slow_destination_gets_each_message_once_from_two_daemons(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path,
) -> None:
    # Each answer takes most of the timeout and a batch takes four leases to send: without
    # a heartbeat the other daemon takes the batch's tail over and sends it again.
    fake, server = webhook
    fake.latency = 0.25
    loaded = config(tmp_path, outbox_url, f"{server.url}/in", batch_size=8, concurrency=1,
                    timeout="400ms", lease="600ms")
    opened().enqueue([NewRow(HOOK, f"m{i}", {"i": i}) for i in range(16)])
    daemons = [DeliveryEngine(loaded, opened(), poll_interval=0.05) for _ in range(2)]
    for daemon in daemons:
        await daemon.start()
    try:
        await until(lambda: sum(d.report.delivered for d in daemons) >= 16, "16 deliveries")
    finally:
        for daemon in daemons:
            await daemon.stop()
    assert fake.duplicates() == {}
    assert sorted(fake.ids) == sorted(set(fake.ids)) and len(fake.ids) == 16
    assert opened().counts()[HOOK].delivered == 16


# -- item 3: outages of hours, the circuit -----------------------------------------------


async def test_six_hours_of_refused_connections_lose_nothing_and_keep_order(
    opened: Callable[[], Outbox], outbox_url: str, tmp_path: Path,
) -> None:
    clock = ManualClock()
    port = free_port()
    loaded = config(tmp_path, outbox_url, f"http://127.0.0.1:{port}/in", concurrency=4)
    outbox = opened()
    outbox.enqueue(people_rows(20, 10), now=clock.now)
    engine = DeliveryEngine(loaded, outbox, clock=clock, rng=random.Random(7))
    try:
        outage_requests = 0
        end = clock.now + 6 * 3600
        while clock.now < end:  # nothing listens on the port: every connection is refused
            outage_requests += (await engine.drain()).requests
            clock.advance(30)
        counts = outbox.counts()[HOOK]
        assert (counts.dead, counts.queued + counts.leased, counts.circuit) == (0, 200, "open")
        # One probe at a time, at growing intervals (at most probe_max, 5 minutes): not a
        # retry of every row every few minutes.
        assert outage_requests < 6 * 3600 / 150 + 20
        fake = WebhookFake()
        with serve(make_app(fake), port=port):  # the destination is back
            for _ in range(60):
                await engine.drain()
                if outbox.counts()[HOOK].delivered == 200:
                    break
                clock.advance(30)
        counts = outbox.counts()[HOOK]
        assert (counts.delivered, counts.dead, counts.circuit) == (200, 0, "closed")
        assert fake.duplicates() == {}
        assert arrivals(fake) == {p: list(range(10)) for p in range(20)}
    finally:
        await engine.aclose()


async def test_a_500_storm_opens_the_circuit_and_the_batch_goes_back_unattempted(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path,
) -> None:
    fake, server = webhook
    clock = ManualClock()
    loaded = config(tmp_path, outbox_url, f"{server.url}/in", concurrency=1, batch_size=30,
                    circuit={"failures": 5, "probe_base": "10s", "probe_max": "1m"})
    outbox = opened()
    outbox.enqueue([NewRow(HOOK, f"m{i:02d}", {"i": i}) for i in range(30)], now=clock.now)
    fake.down(Fault.status_storm(500))
    engine = DeliveryEngine(loaded, outbox, clock=clock, rng=random.Random(1))
    try:
        report = await engine.drain()
        assert (report.requests, report.retried, fake.faulted["status"]) == (5, 5, 5)
        rows = [outbox.row(HOOK, f"m{i:02d}") for i in range(30)]  # type: ignore[attr-defined]
        assert [r["attempts"] for r in rows] == [1] * 5 + [0] * 25
        assert all(r["state"] == "queued" for r in rows)
        counts = outbox.counts()[HOOK]
        assert (counts.circuit, counts.circuit_failures) == ("open", 5)
        assert counts.circuit_next_probe_at is not None
        assert clock.now + 5 <= counts.circuit_next_probe_at <= clock.now + 10
        assert (await engine.drain()).requests == 0  # open: nothing is sent
        clock.now = counts.circuit_next_probe_at
        assert (await engine.drain()).requests == 1  # the probe, alone; it fails
        probe_again = outbox.counts()[HOOK].circuit_next_probe_at
        assert probe_again is not None and probe_again >= clock.now + 10  # the wait grows
        fake.heal()
        clock.now = probe_again
        report = await engine.drain()  # the probe succeeds; the rest follow at once
        assert report.delivered == 30 and outbox.counts()[HOOK].circuit == "closed"
        assert fake.duplicates() == {} and len(fake.ids) == 30
    finally:
        await engine.aclose()


@pytest.mark.postgres
async def test_the_fleet_shares_one_circuit(
    webhook: tuple[WebhookFake, RunningServer], pg_url: str, tmp_path: Path,
) -> None:
    fake, server = webhook
    clock = ManualClock()
    loaded = config(tmp_path, pg_url, f"{server.url}/in", concurrency=1, batch_size=10)
    boxes = [open_outbox(pg_url) for _ in range(3)]
    boxes[0].enqueue([NewRow(HOOK, f"m{i:02d}", {"i": i}) for i in range(40)], now=clock.now)
    fake.down(Fault.reset())
    engines = [DeliveryEngine(loaded, box, clock=clock) for box in boxes]
    try:
        assert (await engines[0].drain()).requests == 5  # opens the circuit
        clock.advance(2)  # past each daemon's copy's REFRESH: they read the stored circuit
        for engine in engines[1:]:
            assert (await engine.drain()).requests == 0
        clock.advance(10)  # the probe is due: exactly one daemon sends it
        reports = await asyncio.gather(*(engine.drain() for engine in engines))
        assert sum(r.requests for r in reports) == 1
        assert fake.faulted["reset"] == 6
    finally:
        for engine in engines:
            await engine.aclose()
        for box in boxes:
            box.close()


# -- hangs, resets, huge bodies ----------------------------------------------------------


@pytest.mark.parametrize(("fault", "error"), [
    (Fault.hang(), "timeout after 0.3s"),
    (Fault.reset(), "connection error sending POST http://127.0.0.1:"),
])
async def test_hangs_and_resets_are_retried_with_what_happened(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path, fault: Fault, error: str,
) -> None:
    fake, server = webhook
    clock = ManualClock()
    loaded = config(tmp_path, outbox_url, f"{server.url}/in", timeout="300ms")
    outbox = opened()
    outbox.enqueue([NewRow(HOOK, "m1", {"i": 1})], now=clock.now)
    fake.inject(fault)
    engine = DeliveryEngine(loaded, outbox, clock=clock)
    try:
        report = await engine.drain()
        assert (report.retried, report.dead) == (1, 0)
        row = outbox.row(HOOK, "m1")  # type: ignore[attr-defined]
        assert row["state"] == "queued" and row["last_error"].startswith(error)
        clock.advance(2)
        assert (await engine.drain()).delivered == 1
    finally:
        await engine.aclose()
    assert fake.faulted[fault.kind] == 1 and fake.ids == [fake.received[0]["id"]]


async def test_a_huge_answer_is_a_delivery(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path,
) -> None:
    fake, server = webhook
    loaded = config(tmp_path, outbox_url, f"{server.url}/in")
    outbox = opened()
    outbox.enqueue([NewRow(HOOK, "m1", {"i": 1})])
    fake.inject(Fault.huge(3 * 1024 * 1024))
    engine = DeliveryEngine(loaded, outbox)
    try:
        assert (await engine.drain()).delivered == 1
    finally:
        await engine.aclose()


# -- a real outage, in real time ---------------------------------------------------------

#: seconds the real-time outage lasts (the issue asks for ten minutes: set 600 to run that;
#: 20 keeps the suite short and still spans several capped probe intervals)
OUTAGE_SECONDS = float(os.environ.get("CROSSDOCK_OUTAGE_SECONDS", "20"))


@pytest.mark.slow
async def test_a_real_outage_loses_nothing_and_is_probed_not_hammered(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path,
) -> None:
    # Connections are reset for OUTAGE_SECONDS while messages keep arriving (one a second);
    # then the destination heals. Probes come at most every 4 s, so the outage costs a few
    # requests per probe interval, not a retry of every row.
    fake, server = webhook
    loaded = config(tmp_path, outbox_url, f"{server.url}/in", concurrency=4,
                    backoff_max="4s",
                    circuit={"failures": 5, "probe_base": "1s", "probe_max": "4s"})
    writer = opened()
    writer.enqueue(people_rows(20, 10))
    fake.down(Fault.reset())
    engine = DeliveryEngine(loaded, opened(), poll_interval=0.2)
    await engine.start()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        late = 0
        while loop.time() - started < OUTAGE_SECONDS:
            writer.enqueue([NewRow(HOOK, f"late-{late}", {"person": 1000 + late % 5,
                                                          "seq": late // 5},
                                   f"u:{1000 + late % 5}")])
            late += 1
            await asyncio.sleep(1.0)
        outage_requests = fake.faulted["reset"]
        assert writer.counts()[HOOK].dead == 0
        fake.heal()
        await until(lambda: writer.counts()[HOOK].delivered == 200 + late,
                    "every message delivered", timeout=120)
    finally:
        await engine.stop()
    counts = writer.counts()[HOOK]
    assert (counts.dead, counts.circuit) == (0, "closed")
    assert fake.duplicates() == {}
    assert outage_requests <= 5 * 4 + OUTAGE_SECONDS / 2 + 5
    order = arrivals(fake)
    assert all(seqs == sorted(seqs) for seqs in order.values())


# -- item 11: one person's messages in order -----------------------------------------------


async def test_two_daemons_deliver_each_persons_messages_in_order_through_failures(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path,
) -> None:
    fake, server = webhook
    pick = random.Random(3)
    fake.script([pick.choice([200, 200, 200, 500, 503, 429]) for _ in range(400)])
    clock = ManualClock()
    loaded = config(tmp_path, outbox_url, f"{server.url}/in", concurrency=4, batch_size=10,
                    backoff_max="5s", circuit={"enabled": False})
    opened().enqueue(people_rows(10, 15), now=clock.now)
    engines = [DeliveryEngine(loaded, opened(), clock=clock, rng=random.Random(i))
               for i in range(2)]
    try:
        for _ in range(300):
            await asyncio.gather(*(engine.drain() for engine in engines))
            if opened().counts()[HOOK].delivered == 150:
                break
            clock.advance(3)
    finally:
        for engine in engines:
            await engine.aclose()
    counts = opened().counts()[HOOK]
    assert (counts.delivered, counts.dead) == (150, 0)
    assert sum(fake.refused.values()) > 50  # plenty of retries happened
    assert arrivals(fake) == {p: list(range(15)) for p in range(10)}


@pytest.mark.parametrize("ordered", [True, False])
async def test_ordered_false_lets_a_persons_later_messages_overtake_a_retry(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path, ordered: bool,
) -> None:
    fake, server = webhook
    fake.script([503])  # the first message of the one person fails once
    clock = ManualClock()
    loaded = config(tmp_path, outbox_url, f"{server.url}/in", concurrency=1, batch_size=10,
                    ordered=ordered)
    outbox = opened()
    outbox.enqueue(people_rows(1, 4), now=clock.now)
    engine = DeliveryEngine(loaded, outbox, clock=clock, rng=random.Random(2))
    try:
        for _ in range(10):
            await engine.drain()
            clock.advance(5)
    finally:
        await engine.aclose()
    assert outbox.counts()[HOOK].delivered == 4
    assert arrivals(fake) == {0: [0, 1, 2, 3] if ordered else [1, 2, 3, 0]}


# -- item 10: what an outage writes --------------------------------------------------------


async def test_an_outage_rewrites_few_rows_so_the_file_barely_grows(tmp_path: Path) -> None:
    # Each retry rewrites its row (in the WAL, then in the file): retrying every row of a
    # backlog every few minutes grew a file by half in a minute. With the circuit open only
    # the probes' rows are written.
    clock = ManualClock()
    path = tmp_path / "outbox.db"
    loaded = config(tmp_path, f"sqlite:///{path}", f"http://127.0.0.1:{free_port()}/in")
    outbox = SQLiteOutbox(path)
    outbox.enqueue([NewRow(HOOK, f"m{i}", {"i": i, "text": "x" * 500}, f"u:{i % 300}")
                    for i in range(3000)], now=clock.now)
    pages = outbox.db.execute("PRAGMA page_count").fetchone()[0]
    written = outbox.db.conn.total_changes
    engine = DeliveryEngine(loaded, outbox, clock=clock, rng=random.Random(4))
    try:
        end = clock.now + 6 * 3600
        while clock.now < end:
            await engine.drain()
            clock.advance(30)
    finally:
        await engine.aclose()
    # The batches in flight when the circuit opened (leased, then given back), the probes
    # and the circuit's own row: fewer writes in six hours than there are rows.
    assert outbox.db.conn.total_changes - written < 1500
    assert outbox.db.execute("PRAGMA page_count").fetchone()[0] < pages * 1.05
    assert outbox.counts()[HOOK].queued == 3000
    outbox.close()


# -- the fault-injecting fake itself -------------------------------------------------------


def test_faults_are_scripted_over_http_by_other_processes(
    webhook: tuple[WebhookFake, RunningServer],
) -> None:
    fake, server = webhook
    with httpx.Client(base_url=server.url) as client:
        script = {"faults": [{"kind": "reset"}],
                  "outage": {"kind": "status", "status": 429,
                             "headers": {"Retry-After": "nan"}}}
        assert client.post("/_fake/script", json=script).json() == {"ok": True}
        with pytest.raises(httpx.TransportError):
            client.post("/in", json={"a": 1})
        storm = [client.post("/in", json={"a": 1}) for _ in range(3)]
        assert [(r.status_code, r.headers["retry-after"]) for r in storm] == [(429, "nan")] * 3
        assert client.post("/_fake/script", json={"outage": None}).json() == {"ok": True}
        assert client.post("/in", json={"a": 1}).status_code == 200
        bad = client.post("/_fake/script", json={"faults": [{"kind": "melt"}]})
        assert bad.status_code == 400 and "reset" in bad.json()["error"]
        seen = client.get("/_fake/received").json()
    assert seen["faulted"] == {"reset": 1, "status": 3}
    assert len(seen["received"]) == 1 and fake.faulted == {"reset": 1, "status": 3}


async def test_a_dead_letter_lets_its_persons_next_message_go_and_says_so(
    webhook: tuple[WebhookFake, RunningServer], opened: Callable[[], Outbox],
    outbox_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    fake, server = webhook
    fake.script([400])  # the person's first message is refused for good
    loaded = config(tmp_path, outbox_url, f"{server.url}/in", concurrency=1)
    outbox = opened()
    outbox.enqueue(people_rows(1, 3))
    engine = DeliveryEngine(loaded, outbox)
    try:
        for _ in range(3):  # one of the person's messages per lease
            await engine.drain()
    finally:
        await engine.aclose()
    assert [letter.message_id for letter in outbox.dead_letters()] == ["m-0-0"]
    assert arrivals(fake) == {0: [1, 2]}
    assert "dead: HTTP 400: ; later messages of the same people go ahead" in caplog.text
