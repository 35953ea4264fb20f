"""Pausing a destination's delivery (Outbox.pause, the console's pause button): kept in the
outbox, so every daemon on it stops leasing the destination's rows; resume lets them go."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from echo_destination import TYPES

from crossdock.delivery import DeliveryEngine, deliver_once
from crossdock.loader import parse_config
from crossdock.outbox import open_outbox
from crossdock.outbox.base import NewRow


def _loaded(tmp_path: Path, outbox_url: str, url: str):
    return parse_config({"outbox": {"url": outbox_url}, "destinations": {"echo": {
        "plugin": "echo", "settings": {"url": url},
        "delivery": {"allow_private_network": True}}}}, base_dir=tmp_path, env={},
        types=TYPES)


async def test_a_pause_by_one_daemon_holds_every_daemon(tmp_path: Path, outbox_url: str,
                                                        echo: Any) -> None:
    loaded = _loaded(tmp_path, outbox_url, echo.url)
    console, daemon = open_outbox(outbox_url), open_outbox(outbox_url)
    try:
        daemon.enqueue([NewRow("echo", f"m{i}", {"id": f"m{i}"}) for i in range(3)])
        assert console.pause("echo", "ada", now=1000.0)
        assert not console.pause("echo", "bob"), "paused twice"
        assert console.paused()["echo"].by == "ada"
        counts = daemon.counts()["echo"]
        assert (counts.paused_by, counts.paused_at, counts.queued) == ("ada", 1000.0, 3)

        report = await deliver_once(loaded, daemon)
        assert (report.requests, echo.fake.ids) == (0, [])
        assert daemon.counts()["echo"].queued == 3

        assert console.resume("echo") and not console.resume("echo")
        report = await deliver_once(loaded, daemon)
        assert report.delivered == 3 and sorted(echo.fake.ids) == ["m0", "m1", "m2"]
        assert daemon.counts()["echo"].paused_by is None
    finally:
        console.close()
        daemon.close()


async def test_a_running_worker_stops_leasing_when_paused(tmp_path: Path, echo: Any) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    loaded = _loaded(tmp_path, url, echo.url)
    outbox = open_outbox(url)
    engine = DeliveryEngine(loaded, outbox, poll_interval=0.05)
    await engine.start()
    try:
        outbox.pause("echo", "ada")
        worker = engine.workers["echo"]
        deadline = time.monotonic() + 10
        while not worker.paused():
            assert time.monotonic() < deadline, "the worker never read the pause"
            await _tick()
        outbox.enqueue([NewRow("echo", "held", {"id": "held"})])
        engine.wake("echo")
        # The worker polls and wakes many times over; each time it leases nothing.
        polls = 0
        while polls < 20:
            await _tick()
            polls += 1
            assert worker.paused()
        assert echo.fake.ids == [] and outbox.counts()["echo"].queued == 1
        outbox.resume("echo")
        engine.wake("echo")
        deadline = time.monotonic() + 10
        while echo.fake.ids != ["held"]:
            assert time.monotonic() < deadline, "resumed, but nothing was delivered"
            await _tick()
    finally:
        await engine.stop(5)
        outbox.close()


async def _tick() -> None:
    await asyncio.sleep(0.05)
