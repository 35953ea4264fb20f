"""Set-wise SQL for the profile store, the same text on SQLite and PostgreSQL: IN lists and
multi-row VALUES, cut into chunks the engines' parameter limits allow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

#: rows per multi-row statement (SQLite allows 32,766 parameters; 7 columns at most here)
CHUNK = 1000


def marks(n: int) -> str:
    return ",".join("?" * n)


def upsert(db: Database, table: str, columns: Sequence[str], key: Sequence[str],
           rows: Sequence[Sequence[Any]], update: str | None = None) -> None:
    """INSERT `rows` (multi-row VALUES, the same SQL on both engines); on a conflict of `key`
    set every other column to the new value (or `update`)."""
    if not rows:
        return
    if update is None:
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    one = f"({marks(len(columns))})"
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        db.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {','.join([one] * len(chunk))} "
            f"ON CONFLICT ({', '.join(key)}) DO {'UPDATE SET ' + update if update else 'NOTHING'}",
            [v for row in chunk for v in row])


def delete_pairs(db: Database, table: str, columns: tuple[str, str],
                 pairs: Sequence[tuple[str, str]]) -> None:
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start:start + CHUNK]
        db.execute(f"DELETE FROM {table} WHERE ({columns[0]}, {columns[1]}) IN "
                   f"(VALUES {','.join(['(?, ?)'] * len(chunk))})",
                   [v for pair in chunk for v in pair])


def select_in(db: Database, sql: str, values: Sequence[Any], *,
              before: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of `sql` (with one `{in}` for an IN list) for every value, chunked."""
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(values), CHUNK):
        chunk = list(values[start:start + CHUNK])
        out += db.execute(sql.format(IN=marks(len(chunk))), [*before, *chunk]).fetchall()
    return out
