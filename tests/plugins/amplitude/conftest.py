"""Fixtures of the Amplitude tests: one contract fake on 127.0.0.1 per module (its state reset
and its limits put back before each test), a clock the tests step, and the pipeline harness
(amplitude_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from amplitude_helpers import API_KEY, Harness

from crossdock.plugins.amplitude.const import EPS_THRESHOLD, MAX_BYTES, MAX_EVENTS
from crossdock.plugins.amplitude.fake import AmplitudeFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.5)


@pytest.fixture(scope="module")
def shared_fake(clock: ManualClock) -> AmplitudeFake:
    return AmplitudeFake(api_key=API_KEY, clock=clock)


server = contract_server(make_app, fake="shared_fake", scope="module")


@pytest.fixture
def fake(shared_fake: AmplitudeFake, server: RunningServer, clock: ManualClock
         ) -> AmplitudeFake:
    """The module's fake, empty, with Amplitude's limits, in a fresh throttling window."""
    shared_fake.reset()
    shared_fake.max_events, shared_fake.max_bytes = MAX_EVENTS, MAX_BYTES
    shared_fake.eps_threshold, shared_fake.throttle_window = EPS_THRESHOLD, 1.0
    shared_fake.silenced_devices = set()
    clock.advance(3600.0)
    return shared_fake


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: AmplitudeFake) -> Harness:
    return Harness(tmp_path, server, fake)
