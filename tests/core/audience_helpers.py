"""Shared by the audience tests: the engines they run on (a SQLite file, a fresh PostgreSQL
schema in the `test` database on 127.0.0.1:5432) and reads of an outbox on either.

The PostgreSQL cases skip, with the reason, only when that server cannot be reached."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crossdock.outbox.pg_schema import temporary_schema

PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: for @pytest.fixture(params=ENGINES)
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def pg_unreachable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}"


@contextmanager
def engine_url(engine: str, tmp_path: Path, name: str = "c.db") -> Iterator[str]:
    """An outbox URL on `engine`: tmp_path/name, or a schema dropped afterwards."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path / name}"
        return
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with temporary_schema(PG_URL, "crossdock_audiences") as url:
        yield url


def outbox_rows(outbox: Any) -> list[tuple[str, dict[str, Any]]]:
    """(destination, payload) of every outbox row, in id order (payloads are text in SQLite,
    jsonb in PostgreSQL)."""
    with outbox.transaction() as db:
        rows = db.execute("SELECT destination, payload FROM outbox ORDER BY id").fetchall()
    return [(str(d), p if isinstance(p, dict) else json.loads(p)) for d, p in rows]


def members(outbox: Any, audience: str) -> set[str]:
    """The userIds of the audience's members."""
    with outbox.transaction() as db:
        return {str(r[0]) for r in db.execute(
            "SELECT p.user_id FROM audience_members m JOIN profiles p ON p.id = m.profile_id "
            "WHERE m.audience = ?", [audience]).fetchall()}
