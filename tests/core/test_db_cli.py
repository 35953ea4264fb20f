"""`crossdock db upgrade` and `crossdock db copy`: SQLite to PostgreSQL and back, keeping
queued rows, retry state, dead letters and the dedup window."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from crossdock.db_cli import db_group
from crossdock.dedup import Dedup
from crossdock.outbox import NewRow, open_outbox
from crossdock.outbox.pg_schema import temporary_schema

PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
T0 = 1_700_000_000.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}")
    with temporary_schema(PG_URL) as url:
        yield url


def test_upgrade_reports_what_it_applied_then_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    first = CliRunner().invoke(db_group, ["upgrade", "--url", url])
    assert first.exit_code == 0, first.output
    assert "m001_initial" in first.output
    again = CliRunner().invoke(db_group, ["upgrade", "--url", url])
    assert again.exit_code == 0, again.output
    assert "already up to date" in again.output


@pytest.mark.postgres
def test_copy_sqlite_to_postgres_and_back_keeps_what_is_still_to_do(
    tmp_path: Path, pg_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = open_outbox(sqlite_url)
    Dedup.migrate(old.db)  # type: ignore[attr-defined]
    with old.transaction() as db:  # type: ignore[attr-defined]
        Dedup().remember(db, "r:key:req-1", T0)
    old.enqueue([NewRow("a", f"m{i}", {"i": i}) for i in range(6)], now=T0)
    m0, m1, m2, _m3 = old.lease("a", 4, 60, "old-daemon", now=T0)
    old.ack([m0.id], now=T0)
    old.retry(m1.id, T0 + 300, "503")
    old.dead(m2.id, "400: bad", now=T0)
    # m3 stays leased by a daemon that was stopped; m4, m5 queued
    old.close()

    upgraded = CliRunner().invoke(db_group, ["upgrade", "--url", pg_url])
    assert upgraded.exit_code == 0, upgraded.output
    assert "pg_001_initial" in upgraded.output
    assert "***" not in upgraded.output  # no password in this URL to hide

    copied = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
    assert copied.exit_code == 0, copied.output
    assert "copied 5 rows" in copied.output
    assert "1 leased rows queued again" in copied.output
    assert "1 dedup keys" in copied.output

    new = open_outbox(pg_url)
    try:
        c = new.counts()["a"]
        # m3's attempt is kept: its stopped daemon may have sent it before the copy
        assert (c.queued, c.retrying, c.dead, c.delivered, c.leased) == (4, 2, 1, 0, 0)
        retried = new.row("a", "m1")  # type: ignore[attr-defined]
        assert (retried["attempts"], retried["next_attempt_at"], retried["last_error"]) == (
            1, T0 + 300, "503")
        assert [d.reason for d in new.dead_letters()] == ["400: bad"]
        with new.transaction() as tx:  # type: ignore[attr-defined]
            assert Dedup().seen(tx, "r:key:req-1", T0 + 60)
        assert [i.message_id for i in new.lease("a", 10, 1e10, "new-daemon", now=T0 + 1)] == [
            "m4", "m5"]
        # m3, leased when copied, is due at the time of the copy (now, not T0)
        assert [i.message_id for i in new.lease("a", 10, 60, "new-daemon")] == ["m1", "m3"]
    finally:
        new.close()

    again = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
    assert again.exit_code == 0, again.output
    assert "copied 0 rows" in again.output
    assert "5 already in the target" in again.output

    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    back = CliRunner().invoke(db_group, ["copy", "--from", pg_url, "--to", back_url,
                                         "--include-delivered"])
    assert back.exit_code == 0, back.output
    restored = open_outbox(back_url)
    try:
        c = restored.counts()["a"]
        # m1, m3-m5, leased in PostgreSQL above, queued again
        assert (c.queued, c.dead, c.leased) == (4, 1, 0)
    finally:
        restored.close()


def test_copy_refuses_the_same_outbox_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    result = CliRunner().invoke(db_group, ["copy", "--from", url, "--to", url])
    assert result.exit_code == 2
    assert "--from and --to are the same outbox" in result.output
