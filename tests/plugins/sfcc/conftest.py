"""Fixtures of the SFCC tests: the contract fake on 127.0.0.1 (Account Manager's token route
and the instance's Data API on one server) with a clock the tests step, and the pipeline
harness (sfcc_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfcc_helpers import Harness

from crossdock.plugins.sfcc.fake import SfccFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> SfccFake:
    fake = SfccFake(clock=clock)
    fake.register(*(f"u{n}" for n in range(1, 10)))
    return fake


server = contract_server(make_app)


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: SfccFake,
            clock: ManualClock) -> Harness:
    return Harness(tmp_path, server, fake, clock)
