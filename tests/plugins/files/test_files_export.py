"""The file export engine, for real: rows through a SQLite outbox and the delivery engine into
a real folder (the `files` destination), one file per window or per max_rows, JSON lines and
CSV, gzip, markers, a row the format cannot hold dead-lettered while the rest is written, and
a failed file put again with exactly its rows under the same name."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.destination import LocalFolder, OutboxItem, PlannedSend, Rejected
from crossdock.exports import ExportSettings, export_file
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.files import FilesDestination
from crossdock.testing.clock import ManualClock
from crossdock.testing.conformance import imports_beyond_the_public_api

#: 2024-05-01 12:10:00 UTC: ten minutes into an hourly window
T0 = datetime(2024, 5, 1, 12, 10, tzinfo=UTC).timestamp()
HOUR = 3600.0


def config(tmp_path: Path, folder: Path, mapping: dict[str, Any] | None = None,
           **settings: Any) -> LoadedConfig:
    entry: dict[str, Any] = {"plugin": "files", "settings": {"folder": str(folder), **settings}}
    if mapping:
        entry["mapping"] = mapping
    return parse_config({"destinations": {"nightly": entry}}, base_dir=tmp_path, env={})


def enqueue(box: SQLiteOutbox, at: float, *payloads: dict[str, Any]) -> None:
    box.enqueue([NewRow("nightly", str(p["messageId"]), p) for p in payloads], now=at)


def event(n: int, **more: Any) -> dict[str, Any]:
    return {"messageId": f"m{n}", "type": "track", "event": f"Event {n}", "userId": f"u{n}",
            "timestamp": "2024-05-01T12:00:00Z", **more}


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


def first_id(box: SQLiteOutbox, message_id: str) -> int:
    row = box.row("nightly", message_id)
    assert row is not None
    return int(row["id"])


async def test_rows_wait_for_their_window_then_land_in_one_file(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clock = ManualClock(T0)
    enqueue(box, T0, event(1), event(2))
    enqueue(box, T0 + 600, event(3))
    loaded = config(tmp_path, out)
    report = await deliver_once(loaded, box, clock=clock)
    assert (report.delivered, report.requests, files(out)) == (0, 0, [])  # window still open
    clock.advance(HOUR)  # 13:10: the 12:00 window has ended
    report = await deliver_once(loaded, box, clock=clock)
    assert (report.delivered, report.requests) == (3, 1)
    name = f"exports/nightly/2024/05/01/1200-{first_id(box, 'm1')}.jsonl"
    assert files(out) == [name]  # no .part file beside it
    assert lines(out / name) == [event(1), event(2), event(3)]  # whole payloads, in order


async def test_max_rows_writes_a_file_before_the_window_ends_and_windows_never_mix(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clock = ManualClock(T0 + HOUR)
    enqueue(box, T0, event(1))  # the 12:00 window, ended
    enqueue(box, T0 + HOUR, *(event(n) for n in range(2, 7)))  # 13:00, open
    loaded = config(tmp_path, out, max_rows=2, every="hourly")
    report = await deliver_once(loaded, box, clock=clock)
    # 12:00's one row, then 13:00's rows two by two while the window is open; m6 waits
    assert (report.delivered, report.requests) == (5, 3)
    names = files(out)
    assert [lines(out / n) for n in names] == [[event(1)], [event(2), event(3)],
                                               [event(4), event(5)]]
    assert names[0].endswith(f"/1200-{first_id(box, 'm1')}.jsonl")
    assert names[1].endswith(f"/1300-{first_id(box, 'm2')}.jsonl")
    clock.advance(HOUR)
    assert (await deliver_once(loaded, box, clock=clock)).delivered == 1


async def test_max_mb_writes_a_file_once_that_much_waits(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clock = ManualClock(T0)
    big = "x" * 400_000
    enqueue(box, T0, event(1, properties={"blob": big}))
    loaded = config(tmp_path, out, max_mb=1)
    assert (await deliver_once(loaded, box, clock=clock)).delivered == 0
    enqueue(box, T0, event(2, properties={"blob": big}), event(3, properties={"blob": big}))
    report = await deliver_once(loaded, box, clock=clock)
    # 1.2 MB waits: a file of the rows that fit in a megabyte; the third waits for more
    assert report.delivered == 2
    assert [row["messageId"] for n in files(out) for row in lines(out / n)] == ["m1", "m2"]


async def test_csv_with_the_mappings_columns_and_a_row_it_cannot_hold_dead_lettered(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clock = ManualClock(T0 + HOUR)
    enqueue(box, T0, event(1, properties={"plan": "pro", "total": 9.5}),
            event(2, properties={"plan": {"tier": "pro"}, "total": 3}),
            event(3, properties={"plan": 'say "hi",\nbye', "total": True}))
    loaded = config(tmp_path, out, format="csv", mapping={"options": {"columns": {
        "id": "messageId", "plan": "properties.plan", "total": "properties.total",
        "email": "traits.email"}}})
    report = await deliver_once(loaded, box, clock=clock)
    assert (report.delivered, report.dead) == (2, 1)
    dead = box.dead_letters("nightly")
    assert [d.message_id for d in dead] == ["m2"]
    assert dead[0].reason == ("rejected: csv column 'plan' (properties.plan) holds an object; "
                              "a CSV cell takes text, a number or true/false: map a path to a "
                              "plain value, or write jsonl")
    (name,) = files(out)
    raw = (out / name).read_bytes()
    assert raw.startswith(b"id,plan,total,email\r\n")
    assert list(csv.reader(io.StringIO(raw.decode(), newline=""))) == [
        ["id", "plan", "total", "email"], ["m1", "pro", "9.5", ""],
        ["m3", 'say "hi",\nbye', "true", ""]]


async def test_gzip_files_are_the_same_bytes_for_the_same_rows_and_carry_a_manifest(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clock = ManualClock(T0 + HOUR)
    enqueue(box, T0, event(1), event(2))
    loaded = config(tmp_path, out, compression="gzip", marker="manifest",
                    path="{destination}/{date:%Y%m%d}/{window_start:%H}-{seq:010d}.{ext}")
    await deliver_once(loaded, box, clock=clock)
    seq = first_id(box, "m1")
    name = f"nightly/20240501/12-{seq:010d}.jsonl.gz"
    assert files(out) == [name, f"{name}.manifest.json"]
    data = (out / name).read_bytes()
    assert lines(out / name) == [event(1), event(2)]
    manifest = json.loads((out / f"{name}.manifest.json").read_text())
    assert manifest == {"file": f"12-{seq:010d}.jsonl.gz", "rows": 2, "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "window_start": "2024-05-01T12:00:00Z",
                        "window_end": "2024-05-01T13:00:00Z", "format": "jsonl",
                        "compression": "gzip", "first_id": seq, "last_id": seq + 1}
    # pure: the same rows make the same bytes (a retried file is identical)
    plugin = loaded.destinations[0].plugin
    items = [OutboxItem(seq + i, f"m{i + 1}", event(i + 1), 1, T0) for i in range(2)]
    (again,) = plugin.build_requests(items)
    assert isinstance(again, PlannedSend)
    assert again.send == plugin.build_requests(items)[0].send  # type: ignore[union-attr]


async def test_a_success_marker_follows_the_file_into_its_folder(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clock = ManualClock(T0 + HOUR)
    enqueue(box, T0, event(1))
    await deliver_once(config(tmp_path, out, marker="success"), box, clock=clock)
    name = f"exports/nightly/2024/05/01/1200-{first_id(box, 'm1')}.jsonl"
    assert files(out) == [name, "exports/nightly/2024/05/01/_SUCCESS"]


async def test_a_failed_file_is_put_again_with_exactly_its_rows_under_the_same_name(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "not-mounted"
    clock = ManualClock(T0 + HOUR)
    enqueue(box, T0, event(1), event(2))
    loaded = config(tmp_path, out, max_rows=10)
    report = await deliver_once(loaded, box, clock=clock)
    assert report.retried == 2
    name = f"exports/nightly/2024/05/01/1200-{first_id(box, 'm1')}.jsonl"
    row = box.row("nightly", "m1")
    assert row is not None and name in row["last_error"]
    # Rows of the same window arrive meanwhile: they never join the failed file.
    enqueue(box, T0 + 60, event(3))
    out.mkdir()  # the operator mounts the volume
    clock.advance(86_400)
    report = await deliver_once(loaded, box, clock=clock)
    assert report.delivered == 3
    assert files(out) == [name, f"exports/nightly/2024/05/01/1200-{first_id(box, 'm3')}.jsonl"]
    assert lines(out / name) == [event(1), event(2)]


def test_settings_name_what_is_wrong() -> None:
    problems = FilesDestination.parse_settings({
        "folder": "relative", "path": "x/{window_start:%H}.{ext}", "every": "7m",
        "format": "xml", "compresion": "gzip"})[1]
    text = "\n".join(problems)
    assert "settings.folder: " in text and "an absolute path" in text
    assert "settings.path: " in text and "must hold {seq}" in text
    assert "settings.every: " in text and "divides a day" in text
    assert "settings.format: " in text
    assert "settings.compresion: unknown setting (did you mean 'compression'?)" in text
    (unknown,) = FilesDestination.parse_settings(
        {"folder": "/x", "path": "{bucket}/{seq}"})[1]
    assert "unknown field {bucket}" in unknown
    (climbing,) = FilesDestination.parse_settings({"folder": "/x", "path": "../{seq}"})[1]
    assert "relative path of plain parts" in climbing


def test_export_file_rejects_only_the_rows_the_format_cannot_hold() -> None:
    settings = ExportSettings(format="csv")
    items = [OutboxItem(1, "m1", event(1, traits={"email": ["a@x", "b@x"]}), 1, T0),
             OutboxItem(2, "m2", event(2, traits={"email": "c@x"}), 1, T0)]
    rejected, put = export_file(items, LocalFolder("/x"), settings, None, "d")
    assert isinstance(rejected, Rejected) and rejected.item.id == 1
    assert "csv column 'email' (traits.email) holds a list" in rejected.reason
    assert isinstance(put, PlannedSend) and [i.id for i in put.items] == [2]
    assert export_file(items[:1], LocalFolder("/x"), settings, None, "d") == [rejected]


def test_the_plugin_imports_only_the_public_api() -> None:
    assert imports_beyond_the_public_api(FilesDestination) == []
