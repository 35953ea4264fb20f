"""Set-wise SQL for the profile store: IN lists and multi-row VALUES, the same text on SQLite
and PostgreSQL, cut into chunks the engines' parameter limits allow; and `select_pairs`, the
lookup of rows by a two-column key, whose text differs by engine (see there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from crossdock.outbox.locks import is_postgres

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


def select_pairs(db: Database, select: str, table: str, key: tuple[str, str],
                 pairs: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
    """`SELECT {select}` of the rows `t` of `table` whose `key` columns equal one of `pairs`:
    one probe of the index on `key` per pair, whatever the planner's statistics say.

    Why not `a IN (...) AND b IN (...)`: on PostgreSQL, with statistics older than the table
    (a store growing faster than autovacuum analyzes it) or a generic plan, the planner may
    count the IN list on `b` as matching everything, read every row of `a`'s few values and
    filter them (issue 20: 19 ms a call and growing with the store). Here each pair is a
    separate lookup by construction: on PostgreSQL a LATERAL subquery per element of two
    arrays (OFFSET 0 keeps the planner from turning it into a join it could hash; one text
    whatever the number of pairs, so the server prepares it once); on SQLite a CROSS JOIN,
    which fixes the VALUES list as the outer loop. `select` may read `t` and run correlated
    subqueries by primary key (each is one probe too)."""
    out: list[tuple[Any, ...]] = []
    if not pairs:
        return out
    a, b = key
    if is_postgres(db):
        return list(db.execute(
            f"SELECT {select} FROM unnest(?::text[], ?::text[]) AS w(a, b) CROSS JOIN LATERAL "
            f"(SELECT * FROM {table} WHERE {table}.{a} = w.a AND {table}.{b} = w.b OFFSET 0) AS t",
            [[p[0] for p in pairs], [p[1] for p in pairs]]).fetchall())
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start:start + CHUNK]
        out += db.execute(
            f"SELECT {select} FROM (VALUES {','.join(['(?, ?)'] * len(chunk))}) AS w "
            f"CROSS JOIN {table} AS t ON t.{a} = w.column1 AND t.{b} = w.column2",
            [v for pair in chunk for v in pair]).fetchall()
    return out
