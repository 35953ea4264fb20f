"""Fixtures of the VTEX tests: the Master Data contract fake on 127.0.0.1 with a clock the
tests step, and the pipeline harness (vtex_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from vtex_helpers import APP_KEY, APP_TOKEN, Harness

from crossdock.plugins.vtex.fake import VtexFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.25)  # a quarter into a second


@pytest.fixture
def fake(clock: ManualClock) -> VtexFake:
    return VtexFake(app_key=APP_KEY, app_token=APP_TOKEN, clock=clock)


server = contract_server(make_app)


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: VtexFake) -> Harness:
    return Harness(tmp_path, server, fake)
