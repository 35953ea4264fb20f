"""A SQLite outbox file read the way a test reads it: through a plain read-only connection
(the outbox's own code is what is under test), as sqlite-utils tables.

    with read_only(path) as db:
        states = Counter(row["state"] for row in db["outbox"].rows_where(select="state"))
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from sqlite_utils import Database


@contextmanager
def read_only(path: Path) -> Iterator[Database]:
    """The file at `path`, read-only (a daemon may be writing it: 30 s busy timeout)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
        yield Database(conn)
