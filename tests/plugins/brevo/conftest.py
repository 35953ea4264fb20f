"""Fixtures of the Brevo tests: one contract fake on 127.0.0.1 per module, with a clock the
tests step, emptied before each test; and the pipeline harness (brevo_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from brevo_helpers import API_KEY, Harness

from crossdock.plugins.brevo.const import GENERAL_LIMITS
from crossdock.plugins.brevo.fake import (
    DEFAULT_ATTRIBUTES,
    DEFAULT_DOI_TEMPLATES,
    DEFAULT_LISTS,
    BrevoFake,
    make_app,
)
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(1_000_000.25)  # a quarter into a second


@pytest.fixture(scope="module")
def module_fake(clock: ManualClock) -> BrevoFake:
    return BrevoFake(api_key=API_KEY, clock=clock)


server = contract_server(make_app, fake="module_fake", scope="module")


@pytest.fixture
def fake(module_fake: BrevoFake, server: RunningServer, clock: ManualClock) -> BrevoFake:
    """The module's fake, as a new account: no contacts, the default attributes, lists,
    templates and limits, and a fresh second on the clock (so no test inherits another's
    rate windows)."""
    def clean() -> None:
        module_fake.reset()
        module_fake.attributes = dict(DEFAULT_ATTRIBUTES)
        module_fake.lists = DEFAULT_LISTS
        module_fake.doi_templates = DEFAULT_DOI_TEMPLATES
        module_fake.rate_limits = dict(GENERAL_LIMITS)

    server.call(clean)
    clock.advance(3600.0)
    return module_fake


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: BrevoFake) -> Harness:
    return Harness(tmp_path, server, fake)
