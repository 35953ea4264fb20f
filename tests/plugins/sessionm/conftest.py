"""Fixtures of the SessionM tests: the contract fake on 127.0.0.1, and the pipeline harness
(sessionm_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sessionm_helpers import API_KEY, API_SECRET, DEFINED_EVENTS, Harness

from crossdock.plugins.sessionm.fake import SessionMFake, make_app
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def fake() -> SessionMFake:
    return SessionMFake(api_key=API_KEY, api_secret=API_SECRET,
                        defined_events=set(DEFINED_EVENTS))


server = contract_server(lambda fake: make_app(fake=fake))


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: SessionMFake) -> Harness:
    return Harness(tmp_path, server, fake)
