"""Run messages through the whole pipeline to a contract fake, as `crossdock run` would.

accept -> profile -> route (the merged mapping) -> SQLite outbox -> deliver, in one call, so a
plugin's tests can show that an operator's crossdock.yaml changes what reaches the fake:

    run = await run_pipeline(config, [identify, track], base_dir=tmp_path)
    assert run.report.delivered == 2
    assert run.rows[0]["state"] == "delivered"

Each delivery pass runs on a clock one day later than the one before, so every retry's backoff
has passed (never the wall clock's sleep).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from crossdock.config import LoadedConfig
from crossdock.delivery import DeliveryReport, deliver_once
from crossdock.destination import Destination
from crossdock.loader import parse_config
from crossdock.outbox.base import DestinationCounts, NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import AcceptResult, build_pipeline
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakescript import FakeState
from crossdock.testing.fakeserver import RunningServer

DAY = 86_400.0


@dataclass
class PipelineRun:
    """What one pass through the pipeline did."""

    loaded: LoadedConfig
    accepted: AcceptResult
    reports: list[DeliveryReport]
    #: every outbox row in order: destination, message_id, state, attempts, last_error
    rows: list[dict[str, Any]]
    #: the outbox's counts per destination (what `crossdock status` shows)
    counts: dict[str, DestinationCounts]

    @property
    def report(self) -> DeliveryReport:
        """The last delivery pass's report."""
        return self.reports[-1]


async def run_pipeline(
    config: dict[str, Any],
    messages: list[dict[str, Any]],
    *,
    base_dir: Path,
    deliveries: int = 1,
    types: dict[str, type[Destination]] | None = None,
) -> PipelineRun:
    """Load `config` (a parsed crossdock.yaml with a SQLite outbox), accept `messages`, then
    deliver `deliveries` times."""
    loaded = parse_config(config, base_dir=base_dir, env={}, types=types)
    pipeline = build_pipeline(loaded)
    try:
        accepted = pipeline.accept(messages)
        reports = []
        for n in range(deliveries):
            reports.append(await deliver_once(loaded, pipeline.outbox,
                                              clock=_fixed(time.time() + n * DAY)))
        columns = ("destination", "message_id", "state", "attempts", "last_error")
        with pipeline.outbox.transaction() as tx:
            rows = [dict(zip(columns, row, strict=True)) for row in tx.execute(
                f"SELECT {', '.join(columns)} FROM outbox ORDER BY id").fetchall()]
        counts = pipeline.outbox.counts()
    finally:
        pipeline.close()
    return PipelineRun(loaded, accepted, reports, rows, counts)


def _fixed(at: float) -> Callable[[], float]:
    """A clock that always says `at`."""
    return lambda: at


def fake_destination_config(outbox: Path, name: str, destination: dict[str, Any]
                            ) -> dict[str, Any]:
    """A crossdock.yaml (parsed) with one destination delivering to a contract fake: the
    collector off, a SQLite outbox at `outbox`, and the destination (`plugin`, `settings`,
    `mapping`, `rules`, ...) sending one request at a time, so the fake sees messages in the
    order they were accepted, and opted into private networks (the fake is on 127.0.0.1)."""
    delivery = {"concurrency": 1, "allow_private_network": True,
                **destination.get("delivery", {})}
    return {
        "outbox": {"url": f"sqlite:///{outbox}"},
        "collector": {"enabled": False},
        "destinations": {name: {**destination, "delivery": delivery}},
    }


class OutboxOnClock:
    """A SQLite outbox and the real engine's delivery passes on a clock the test steps, for
    tests where time is the point (a fake that reckons token expiry on the same clock, a
    retry due after Retry-After): `run_pipeline` moves a day per pass instead.

        outbox = OutboxOnClock(tmp_path / "outbox.db", clock)
        report = await outbox.deliver(loaded, "sfcc", [payload, ...])   # routed payloads
    """

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.outbox = SQLiteOutbox(path)
        self.clock = clock
        self.count = 0

    async def deliver(self, loaded: LoadedConfig, destination: str,
                      payloads: list[dict[str, Any]]) -> DeliveryReport:
        """Enqueue `payloads` for `destination` (message ids m1, m2, ... across calls) and
        run one delivery pass of `loaded` at the clock's time."""
        rows = []
        for payload in payloads:
            self.count += 1
            rows.append(NewRow(destination, f"m{self.count}", payload, payload.get("userId")))
        self.outbox.enqueue(rows, now=self.clock())
        return await deliver_once(loaded, self.outbox, clock=self.clock)


F = TypeVar("F", bound=FakeState)


@dataclass
class FakeHarness(Generic[F]):
    """One plugin's destination at its contract fake, run through the whole pipeline
    (`run_pipeline`), each run with an outbox of its own: a plugin's tests subclass it with
    `plugin`, `base_settings()` (the settings that reach the fake) and their own readers of
    the fake.

        @dataclass
        class Harness(FakeHarness[AcmeFake]):
            plugin = "acme"

            def base_settings(self) -> dict[str, Any]:
                return {"base_url": self.server.url, "api_key": API_KEY}

        run = await harness.run([identify], mapping={"options": {...}})
    """

    tmp_path: Path
    server: RunningServer
    fake: F
    runs: int = 0
    plugin: ClassVar[str]

    def base_settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def config(self, *, settings: dict[str, Any] | None = None,
               mapping: dict[str, Any] | None = None, **keys: Any) -> dict[str, Any]:
        """The crossdock.yaml of a run: `settings` over `base_settings()`, the operator's
        `mapping` (none: the shipped one), and the destination's other keys given (`rules`,
        `filter`, `delivery`: over one request at a time, private networks allowed)."""
        destination: dict[str, Any] = {
            "plugin": self.plugin, "settings": {**self.base_settings(), **(settings or {})}}
        for key, value in {"mapping": mapping, **keys}.items():
            if value is not None:
                destination[key] = value
        self.runs += 1
        return fake_destination_config(self.tmp_path / f"outbox-{self.runs}.db", self.plugin,
                                       destination)

    async def run(self, messages: list[dict[str, Any]], *, deliveries: int = 1,
                  **config: Any) -> PipelineRun:
        """`messages` through the pipeline to the fake (`config(**config)`)."""
        return await run_pipeline(self.config(**config), messages, base_dir=self.tmp_path,
                                  deliveries=deliveries)


@dataclass
class FakeOnClock(Generic[F]):
    """One plugin's destination at its contract fake, its rows in a SQLite outbox and the real
    engine's delivery passes on the tests' clock (`OutboxOnClock`; the fake's too, which
    reckons token expiry on it): a plugin's tests subclass it with `plugin`, `options` (the
    operator's mapping options) and `base_settings(**more)`.

        report = await harness.deliver([identify(1)], client_secret="wrong")
    """

    tmp_path: Path
    server: RunningServer
    fake: F
    clock: ManualClock
    #: the destination's `delivery:` over fast backoffs
    delivery: dict[str, Any] | None = None
    plugin: ClassVar[str]
    options: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        self.on_clock = OutboxOnClock(self.tmp_path / "outbox.db", self.clock)
        self.outbox = self.on_clock.outbox

    def base_settings(self, **more: Any) -> dict[str, Any]:
        """The settings that reach the fake, `more` over them."""
        raise NotImplementedError

    def loaded(self, **more: Any) -> LoadedConfig:
        raw = {"destinations": {self.plugin: {
            "plugin": self.plugin, "settings": self.base_settings(**more),
            "mapping": {"options": self.options},
            "delivery": {"allow_private_network": True, "backoff_base": 0.01,
                         "backoff_max": 0.02, **(self.delivery or {})}}}}
        return parse_config(raw, base_dir=self.tmp_path, env={})

    async def deliver(self, payloads: list[dict[str, Any]], **more: Any) -> DeliveryReport:
        """Enqueue the routed `payloads` and run one delivery pass at the clock's time, with
        `more` over the settings."""
        return await self.on_clock.deliver(self.loaded(**more), self.plugin, payloads)
