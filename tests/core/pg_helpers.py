"""The test PostgreSQL server ($CROSSDOCK_TEST_PG, default the local `test` database).

Fixtures on it are in conftest.py (`pg_server`, `pg_url`); parametrized fixtures that choose an
engine themselves use these names directly."""

from __future__ import annotations

import os

import psycopg

PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_unreachable() -> str | None:
    """Why the test server cannot be used (the reason to skip with), or None when it answers."""
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}"
