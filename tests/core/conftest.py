"""Shared pieces of the engine tests: a tiny "echo" destination type, a loopback fake that
answers as each test scripts it, a config for them, a clock tests control, and the test
PostgreSQL server (a fresh schema per test; skipped when it is unreachable)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from echo_destination import TYPES
from pg_helpers import PG_URL, pg_unreachable
from route_helpers import passthrough_route

from crossdock.config import LoadedConfig
from crossdock.loader import parse_config
from crossdock.models import EnrichedMessage
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, serve


@dataclass
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class EchoFake:
    """The destination's side: records every batch, answers from `script` (then 200)."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.batches: list[list[dict[str, Any]]] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    def then(self, status: int = 200, body: str = "ok", headers: dict[str, str] | None = None,
             delay: float = 0.0) -> EchoFake:
        """Script the next reply."""
        self.script.append(Reply(status, body, headers or {}, delay))
        return self

    @property
    def ids(self) -> list[str]:
        return [entry["id"] for batch in self.batches for entry in batch]

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = json.loads(await request.read())
            self.batches.append(body["batch"])
            reply = self.script.pop(0) if self.script else Reply(delay=self.delay)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            return web.Response(status=reply.status, text=reply.body, headers=reply.headers)
        finally:
            self.in_flight -= 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


@dataclass
class Echo:
    fake: EchoFake
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url + "/hook"


@pytest.fixture
def echo() -> Iterator[Echo]:
    fake = EchoFake()
    with serve(fake.app()) as server:
        yield Echo(fake, server)


def _make_loaded(tmp_path: Path, url: str, **delivery: Any) -> LoadedConfig:
    # The fakes listen on 127.0.0.1: the destination opts into private networks.
    raw = {
        "outbox": {"url": f"sqlite:///{tmp_path / 'crossdock.db'}"},
        "destinations": {"echo": {"plugin": "echo", "settings": {"url": url},
                                  "delivery": {"allow_private_network": True, **delivery}}},
    }
    return parse_config(raw, base_dir=tmp_path, env={}, types=TYPES)


@pytest.fixture
def make_loaded(tmp_path: Path) -> Callable[..., LoadedConfig]:
    """make_loaded(url, **delivery): a config with one "echo" destination posting to `url`,
    its outbox in tmp_path/crossdock.db."""
    return functools.partial(_make_loaded, tmp_path)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SQLiteOutbox]:
    box = SQLiteOutbox(tmp_path / "crossdock.db")
    yield box
    box.close()


@pytest.fixture
def clock() -> ManualClock:
    """Epoch seconds (from 1,700,000,000) that move only when the code under test sleeps
    through `clock.sleep` or the test calls `clock.advance`."""
    return ManualClock()


@pytest.fixture
def pg_server() -> str:
    """The test PostgreSQL server's URL (pg_helpers.PG_URL); skips the test when it does not
    answer. Tests make their own schema on it with `temporary_schema(pg_server, prefix)`."""
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server, dropped after the test."""
    with temporary_schema(pg_server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty outbox on each engine in turn: a SQLite file, then a fresh schema
    on the test PostgreSQL server (skipped when it does not answer)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
        return
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with temporary_schema(PG_URL) as url:
        yield url


@pytest.fixture
def route() -> Callable[[EnrichedMessage, Any], dict[str, Any]]:
    """Stands in for crossdock.route.router.route where a test is about the pipeline's
    transaction and bookkeeping, not about routing."""
    return passthrough_route


# -- the console (console_helpers): a module's `url` fixture serves it ------------------------


@pytest.fixture
def admin(url: str) -> Iterator[httpx.Client]:
    """A client logged in to the console at `url` as the admin ada."""
    from console_helpers import ADMIN_PASSWORD, logged_in

    client = logged_in(url, "ada", ADMIN_PASSWORD)
    yield client
    client.close()


@pytest.fixture
def viewer(url: str) -> Iterator[httpx.Client]:
    """A client logged in to the console at `url` as the read-only vic."""
    from console_helpers import VIEWER_PASSWORD, logged_in

    client = logged_in(url, "vic", VIEWER_PASSWORD)
    yield client
    client.close()
