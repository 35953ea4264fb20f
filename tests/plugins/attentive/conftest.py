"""Fixtures of the Attentive tests: the contract fake on 127.0.0.1 with a clock the tests
step, and the pipeline harness (attentive_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from attentive_helpers import API_KEY, Harness

from crossdock.plugins.attentive.fake import AttentiveFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> AttentiveFake:
    return AttentiveFake(api_key=API_KEY, clock=clock)


server = contract_server(make_app)


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: AttentiveFake) -> Harness:
    return Harness(tmp_path, server, fake)
