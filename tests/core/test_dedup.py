"""Dedup keys in SQLite: the window, records that roll back with their transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossdock.dedup import Dedup, message_key, request_key
from crossdock.outbox.sqlite import SQLiteOutbox


def test_window_and_purge(tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "x.db")
    dedup = Dedup(window=100)
    with box.transaction() as db:
        Dedup.migrate(db)
        assert dedup.check_and_remember(db, message_key("m"), now=1000) is False
        assert dedup.check_and_remember(db, message_key("m"), now=1099) is True
        assert dedup.seen(db, message_key("m"), now=1100) is False
        assert dedup.purge(db, now=1100) == 1
    box.close()


def test_a_rolled_back_record_is_not_seen(tmp_path: Path) -> None:
    box = SQLiteOutbox(tmp_path / "x.db")
    dedup = Dedup()
    key = request_key("k1", "req-1")
    with pytest.raises(RuntimeError), box.transaction() as db:
        Dedup.migrate(db)
        dedup.remember(db, key, now=1)
        raise RuntimeError("crash before commit")
    with box.transaction() as db:
        Dedup.migrate(db)
        assert not dedup.seen(db, key, now=2)
    assert request_key("k1", "r") != request_key("k2", "r")
    box.close()
