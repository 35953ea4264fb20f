"""Fixtures of the Google Ads tests: the contract fake on 127.0.0.1 (Google's token endpoint and
the Ads API on one server) with a clock the tests step, and the pipeline harness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google_ads_helpers import Harness

from crossdock.plugins.google_ads.fake import GoogleAdsFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> GoogleAdsFake:
    return GoogleAdsFake(clock=clock)


@pytest.fixture
def server(fake: GoogleAdsFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        yield running


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: GoogleAdsFake,
            clock: ManualClock) -> Harness:
    return Harness(tmp_path, server, fake, clock)
