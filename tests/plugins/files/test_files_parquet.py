"""Parquet files (the `parquet` extra: pyarrow) from the `files` destination through the
SQLite outbox and the delivery engine: typed columns read back with pyarrow, the same rows
making the same bytes, and a value Parquet cannot type in its column a named, counted dead
letter while the rest of the file is written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.destination import LocalFolder, OutboxItem, PlannedSend, Rejected
from crossdock.errors import ConfigError
from crossdock.exports import ExportSettings, export_file
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.testing.clock import ManualClock

T0 = datetime(2024, 5, 1, 12, 10, tzinfo=UTC).timestamp()
HOUR = 3600.0
COLUMNS = {"id": "messageId", "plan": "properties.plan", "total": "properties.total",
           "paid": "properties.paid", "email": "traits.email"}


def config(tmp_path: Path, folder: Path, **settings: Any) -> LoadedConfig:
    return parse_config({"destinations": {"nightly": {
        "plugin": "files", "settings": {"folder": str(folder), "format": "parquet", **settings},
        "mapping": {"options": {"columns": COLUMNS}}}}}, base_dir=tmp_path, env={})


def event(n: int, **properties: Any) -> dict[str, Any]:
    return {"messageId": f"m{n}", "type": "track", "event": "Paid", "userId": f"u{n}",
            "properties": properties}


async def test_typed_columns_and_a_value_parquet_cannot_type_dead_lettered(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        box.enqueue([NewRow("nightly", f"m{n}", p) for n, p in enumerate([
            event(0, plan="pro", total=3, paid=True),
            event(1, plan="team", total=9.5, paid=False),
            event(2, plan="free", total="lots", paid=True),      # text in a numbers column
            event(3, plan={"tier": "pro"}, total=1, paid=True),  # an object
            event(4, plan=None, total=2**70, paid=True),         # beyond 64 bits
            event(5, total=4, paid=None),
        ])], now=T0)
        report = await deliver_once(config(tmp_path, out, compression="gzip"), box,
                                    clock=ManualClock(T0 + HOUR))
        assert (report.delivered, report.dead) == (3, 3)
        reasons = {d.message_id: d.reason for d in box.dead_letters("nightly")}
    finally:
        box.close()
    assert reasons == {
        "m2": "rejected: parquet column 'total' (properties.total) holds text where the "
              "file's column holds numbers (its first value's type): one type per column",
        "m3": "rejected: parquet column 'plan' (properties.plan) holds an object; a Parquet "
              "column here takes text, numbers or true/false: map a path to a plain value, "
              "or write jsonl",
        "m4": f"rejected: parquet column 'total' (properties.total) holds {2**70}, beyond a "
              "64-bit whole number",
    }
    (path,) = [p for p in out.rglob("*") if p.is_file()]
    assert path.name.endswith(".parquet")  # compressed inside, no .gz
    table = pq.read_table(path)
    assert [str(f.type) for f in table.schema] == ["string", "string", "double", "bool",
                                                   "string"]
    assert table.to_pylist() == [
        {"id": "m0", "plan": "pro", "total": 3.0, "paid": True, "email": None},
        {"id": "m1", "plan": "team", "total": 9.5, "paid": False, "email": None},
        {"id": "m5", "plan": None, "total": 4.0, "paid": None, "email": None}]
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "GZIP"


def test_the_same_rows_make_the_same_file_and_whole_numbers_stay_whole() -> None:
    items = [OutboxItem(i + 1, f"m{i}", event(i, plan="pro", total=i, paid=True), 1, T0)
             for i in range(3)]
    settings = ExportSettings(format="parquet")
    first, again = (export_file(items, LocalFolder("/x"), settings, COLUMNS, "nightly")
                    for _ in range(2))
    assert not any(isinstance(p, Rejected) for p in first)
    (put,) = [p for p in first if isinstance(p, PlannedSend)]
    (put_again,) = [p for p in again if isinstance(p, PlannedSend)]
    assert put.send.content == put_again.send.content
    assert put.send.name.endswith(".parquet")


def test_parquet_without_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'crossdock\[parquet\]'"):
        config(tmp_path, tmp_path)
