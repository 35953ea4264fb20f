"""Fixtures of the TikTok tests: one contract fake on 127.0.0.1 per module (its state reset and
its limits put back before each test), a clock the tests step, and the pipeline harness
(tiktok_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiktok_helpers import PIXEL, TOKEN, Harness

from crossdock.plugins.tiktok.fake import TikTokFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.5)


@pytest.fixture(scope="module")
def shared_fake(clock: ManualClock) -> TikTokFake:
    return TikTokFake(access_token=TOKEN, pixels={PIXEL}, clock=clock)


server = contract_server(make_app, fake="shared_fake", scope="module")


@pytest.fixture
def fake(shared_fake: TikTokFake, server: RunningServer, clock: ManualClock) -> TikTokFake:
    """The module's fake, empty, without a rate limit, in a fresh second."""
    shared_fake.reset()
    shared_fake.qps = None
    shared_fake.pixels = {PIXEL}
    clock.advance(10.0)
    return shared_fake


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: TikTokFake) -> Harness:
    return Harness(tmp_path, server, fake)
