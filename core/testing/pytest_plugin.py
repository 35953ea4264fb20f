"""Crossdock's pytest plugin: fixtures for a destination plugin's tests. `pip install
'crossdock[testing]'` installs it (the `pytest11` entry point); nothing to import.

    def test_delivered(fake_server, cassettes):
        server = fake_server(make_app(AcmeFake()))           # a contract fake on 127.0.0.1
        with cassettes.use_cassette("delivered.yaml"):       # tests/cassettes/delivered.yaml
            ...

    def test_through_the_pipeline(fake_server, pipeline):
        server = fake_server(make_app(AcmeFake()))
        run = pipeline({"destinations": {...}}, [message])  # accept -> ... -> delivered
        assert run.report.delivered == 1

    def test_later(clock):                                   # a ManualClock
        clock.advance(60)

A conftest whose tests share one fake by name makes its `server` fixture with
`contract_server` (the fake's fixture started on 127.0.0.1 for as long as its scope):

    server = contract_server(make_app)                                  # serves `fake`
    server = contract_server(make_app, fake="shared_fake", scope="module")

The standard conformance suite is a class to subclass: crossdock.testing.conformance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:  # imported when a fixture runs: loading the plugin stays cheap
    import vcr
    from _pytest.fixtures import FixtureFunctionDefinition
    from aiohttp import web

    from crossdock.destination import Destination
    from crossdock.testing.clock import ManualClock
    from crossdock.testing.fakeserver import RunningServer
    from crossdock.testing.pipeline import PipelineRun


@pytest.fixture
def fake_server() -> Iterator[Callable[[web.Application], RunningServer]]:
    """Start contract fakes on 127.0.0.1 for this test: `server = fake_server(make_app(fake))`
    returns the running server (`server.url`); all are stopped when the test ends."""
    from crossdock.testing.fakeserver import serve

    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve(app))


def contract_server(
    make_app: Callable[[Any], web.Application], *, fake: str = "fake",
    scope: Literal["function", "module", "session"] = "function",
) -> FixtureFunctionDefinition:
    """A `server` fixture: `make_app(<the fixture named fake>)` served on 127.0.0.1 while
    the scope lasts (`server.url`). The fake's fixture must live at least as long."""
    from crossdock.testing.fakeserver import serve

    @pytest.fixture(scope=scope, name="server")
    def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
        with serve(make_app(request.getfixturevalue(fake))) as running:
            yield running

    return server


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves (`clock.advance(s)`), for code that takes `clock=`."""
    from crossdock.testing.clock import ManualClock

    return ManualClock()


@pytest.fixture
def cassettes(request: pytest.FixtureRequest) -> vcr.VCR:
    """vcrpy for the `cassettes/` folder beside the test file: replayed, never recorded,
    unless CROSSDOCK_RECORD=1 (crossdock.testing.cassettes)."""
    from crossdock.testing.cassettes import plugin_vcr

    return plugin_vcr(Path(request.path).parent / "cassettes")


@pytest.fixture
def pipeline(tmp_path: Path) -> Callable[..., PipelineRun]:
    """`pipeline(config, messages, deliveries=1, types=None)`: a crossdock.yaml (as a dict,
    with a SQLite outbox in the test's folder) and messages through accept, profile, route,
    outbox and delivery, as `crossdock run` would (crossdock.testing.pipeline). For tests
    that are not async; an async test awaits `run_pipeline` itself."""
    from crossdock.testing.pipeline import run_pipeline

    def run(config: dict[str, Any], messages: list[dict[str, Any]], *, deliveries: int = 1,
            types: dict[str, type[Destination]] | None = None) -> PipelineRun:
        return asyncio.run(run_pipeline(config, messages, base_dir=tmp_path,
                                        deliveries=deliveries, types=types))

    return run
