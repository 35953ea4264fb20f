"""Fixtures of the function destination's tests: the recording endpoint (its contract fake)
on 127.0.0.1 and a real SQLite outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from function_helpers import API_KEY

from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.function.fake import RecordingFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def fake() -> RecordingFake:
    return RecordingFake(api_key=API_KEY)


server = contract_server(make_app)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SQLiteOutbox]:
    box = SQLiteOutbox(tmp_path / "crossdock.db")
    yield box
    box.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
