"""Fixtures of the MailUp tests: the contract fake on 127.0.0.1 (the authorization server and
the console service on one server) with a clock the tests step, and the pipeline harness
(mailup_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mailup_helpers import Harness

from crossdock.plugins.mailup.fake import MailUpFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> MailUpFake:
    return MailUpFake(clock=clock)


server = contract_server(make_app)


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: MailUpFake,
            clock: ManualClock) -> Harness:
    return Harness(tmp_path, server, fake, clock)
