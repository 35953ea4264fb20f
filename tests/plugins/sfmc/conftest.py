"""Fixtures of the SFMC tests: the contract fake on 127.0.0.1 (the tenant's auth and REST
hosts on one server) with a clock the tests step, and the pipeline harness
(sfmc_helpers.Harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sfmc_helpers import Harness

from crossdock.plugins.sfmc.fake import SfmcFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> SfmcFake:
    return SfmcFake(clock=clock)


@pytest.fixture
def server(fake: SfmcFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        fake.base = running.url
        yield running


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: SfmcFake,
            clock: ManualClock) -> Harness:
    return Harness(tmp_path, server, fake, clock)
