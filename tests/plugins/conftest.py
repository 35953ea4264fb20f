"""Fixtures shared by the plugins' tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crossdock.outbox.sqlite import SQLiteOutbox


@pytest.fixture
def box(tmp_path: Path) -> Iterator[SQLiteOutbox]:
    """A real SQLite outbox in the test's folder (the file destinations' tests)."""
    outbox = SQLiteOutbox(tmp_path / "outbox.db")
    yield outbox
    outbox.close()
