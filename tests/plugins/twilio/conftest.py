"""Fixtures of the Twilio tests: one contract fake on 127.0.0.1 per module, emptied before each
test; and the pipeline harness (twilio_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twilio_helpers import Harness

from crossdock.plugins.twilio.fake import TwilioFake, make_app
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture(scope="module")
def module_fake() -> TwilioFake:
    return TwilioFake()


server = contract_server(make_app, fake="module_fake", scope="module")


@pytest.fixture
def fake(module_fake: TwilioFake, server: RunningServer) -> TwilioFake:
    """The module's fake with no messages, opt-outs or landlines, the default limit."""
    def clean() -> None:
        module_fake.reset()
        module_fake.max_concurrency = 10
        module_fake.latency = 0.0

    server.call(clean)
    return module_fake


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: TwilioFake) -> Harness:
    return Harness(tmp_path, server, fake)
