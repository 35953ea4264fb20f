"""Helpers of the SessionM tests: the app's credentials, an open filter, and a harness that
runs messages through the whole pipeline (accept -> profile -> route -> SQLite outbox ->
deliver) to the contract fake. The fixtures are in conftest.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossdock.config import LoadedConfig
from crossdock.delivery import DeliveryReport
from crossdock.loader import parse_config
from crossdock.pipeline import AcceptResult
from crossdock.plugins.sessionm.fake import SessionMFake
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pipeline import run_pipeline

API_KEY = "app-key-1"
API_SECRET = "app-secret-1"
DEFINED_EVENTS = frozenset({"Order Completed", "Product Viewed", "Home", "purchase"})
#: a filter that enables everything the rules tests need (each test narrows what it checks)
OPEN_FILTER: dict[str, Any] = {
    "events": {"allow": ["*"]},
    "event_attributes": {"allow": ["*"]},
    "user_attributes": {"allow": ["*"]},
    "identities": {"allow": ["*"]},
}


@dataclass
class Run:
    """What one pass through the pipeline did, and what the fake got."""

    loaded: LoadedConfig
    accepted: AcceptResult
    reports: list[DeliveryReport]
    rows: list[dict[str, Any]]
    dropped_attributes: int
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def report(self) -> DeliveryReport:
        return self.reports[-1]

    @property
    def bodies(self) -> list[Any]:
        """Bodies of the requests the fake accepted ({"status": "ok"})."""
        return [r["body"] for r in self.received if r["code"] is None]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [b["event"] for b in self.bodies if "event" in b]

    @property
    def users(self) -> list[dict[str, Any]]:
        return [b["user"] for b in self.bodies]


@dataclass
class Harness:
    tmp_path: Path
    server: RunningServer
    fake: SessionMFake
    runs: int = 0

    def config(
        self,
        *,
        filter: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        mapping: dict[str, Any] | None = None,
        rules: dict[str, Any] | None = None,
        profiles: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        destination: dict[str, Any] = {
            "plugin": "sessionm",
            "settings": {"host": self.server.url, "api_key": API_KEY,
                         "api_secret": API_SECRET, **(settings or {})},
            # One request at a time: the fake sees messages in the order they were accepted.
            # The fake is on 127.0.0.1: the destination opts into private networks.
            "delivery": {"backoff_base": 1, "max_attempts": 5, "concurrency": 1,
                         "allow_private_network": True},
        }
        for key, value in (("filter", filter), ("mapping", mapping), ("rules", rules)):
            if value is not None:
                destination[key] = value
        self.runs += 1
        return {
            "outbox": {"url": f"sqlite:///{self.tmp_path / f'outbox-{self.runs}.db'}"},
            "collector": {"enabled": False},
            "profiles": profiles or {},
            "destinations": {"sessionm": destination},
        }

    def load(self, **config: Any) -> LoadedConfig:
        return parse_config(self.config(**config), base_dir=self.tmp_path, env={})

    async def run(self, messages: list[dict[str, Any]], *, deliveries: int = 1,
                  **config: Any) -> Run:
        """Accept `messages`, then deliver `deliveries` times, each run as if after every
        retry's backoff had passed (a clock one day later per run, never the wall clock)."""
        run = await run_pipeline(self.config(**config), messages, base_dir=self.tmp_path,
                                 deliveries=deliveries)
        counts = run.counts.get("sessionm")
        dropped = counts.dropped_attributes if counts is not None else 0
        received = list(self.server.call(lambda: list(self.fake.received)))
        return Run(run.loaded, run.accepted, run.reports, run.rows, dropped, received)
