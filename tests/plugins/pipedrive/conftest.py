"""Fixtures of the Pipedrive tests: the contract fake on 127.0.0.1 with a clock the tests step,
and the pipeline harness (pipedrive_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipedrive_helpers import TOKEN, Harness

from crossdock.plugins.pipedrive.fake import PipedriveFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server

#: 2023-11-14T22:00:00Z: two hours before a UTC midnight, at the start of a 2-second window
START = 1_700_000_000.0 - 1_700_000_000.0 % 86_400 + 79_200


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def fake(clock: ManualClock) -> PipedriveFake:
    return PipedriveFake(api_token=TOKEN, clock=clock)


server = contract_server(make_app)


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: PipedriveFake) -> Harness:
    return Harness(tmp_path, server, fake)
