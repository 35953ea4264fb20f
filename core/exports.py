"""File exports: the rows of one window as one file (JSON lines or CSV, gzip optional) under a
path made from a template, for the destinations that write files (`files`, `s3`, `sftp`, `ftp`;
docs/exports.md). Pure, as every plugin is: rows in, one `FilePut` (and the rows it cannot
write, as `Rejected`) out; the engine holds the rows for their window, keeps a file's rows
together, and its sender does the I/O.

    class AcmeExport(ExportDestination[AcmeSettings]):
        manifest = export_manifest("acme", "Files into Acme's store", "docs/destinations/acme.md")

        def store(self) -> FileStore:
            return AcmeStore(self.settings.bucket)

A file is a function of its rows alone, so a retry of a kept batch writes the same bytes under
the same name: the name comes from the window the rows were accepted in and the first row's
outbox id (`{seq}`), gzip is written without a time in its header, and CSV columns and JSON
keys keep their order.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crossdock.destination import (
    ALL_MESSAGE_TYPES,
    Destination,
    FilePut,
    FileStore,
    Manifest,
    Marker,
    OutboxItem,
    Planned,
    PlannedSend,
    Rejected,
    Window,
    first_value,
    json_content,
    stringify,
)
from crossdock.durations import parse_duration

__all__ = [
    "DEFAULT_COLUMNS",
    "ExportDestination",
    "ExportOptions",
    "ExportSettings",
    "ServerExportSettings",
    "absolute_path",
    "export_file",
    "export_manifest",
]

#: what a CSV file holds when the mapping names no columns: column name -> dotted path
DEFAULT_COLUMNS: dict[str, str] = {
    "message_id": "messageId",
    "type": "type",
    "event": "event",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "timestamp": "timestamp",
    "email": "traits.email",
}

#: what a path template may name
PATH_FIELDS = ("destination", "date", "window_start", "window_end", "seq", "ext")
DEFAULT_PATH = "exports/{destination}/{date:%Y/%m/%d}/{window_start:%H%M}-{seq}.{ext}"
_EVERY_WORDS = {"hourly": 3600.0, "daily": 86400.0}
_CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv",
                  "parquet": "application/vnd.apache.parquet"}
#: the formats whose columns come from the mapping (DEFAULT_COLUMNS when it names none)
COLUMN_FORMATS = ("csv", "parquet")


class ExportSettings(BaseModel):
    """What every file destination's settings hold besides where the files go."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["jsonl", "csv", "parquet"] = Field(
        default="jsonl", description="jsonl (one JSON object a line), csv, or parquet (the "
                                     "`parquet` extra: pyarrow)")
    compression: Literal["none", "gzip"] = "none"
    path: str = Field(default=DEFAULT_PATH, description="the file name template")
    every: float = Field(default=3600.0, description="the window: '15m', 'hourly', 'daily'")
    max_rows: int = Field(default=100_000, ge=1, le=10_000_000,
                          description="a file is written once this many rows wait")
    max_mb: float | None = Field(default=None, gt=0,
                                 description="or once this many megabytes of rows wait")
    marker: Literal["none", "manifest", "success"] = Field(
        default="none", description="manifest: NAME.manifest.json beside each file; "
                                    "success: an empty _SUCCESS in its folder after it")

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> float:
        if isinstance(value, str) and value.strip().lower() in _EVERY_WORDS:
            return _EVERY_WORDS[value.strip().lower()]
        seconds = parse_duration(value)
        if seconds < 60 or 86400 % seconds:
            # Windows tile the day, so every day's files start at the same times.
            raise ValueError(f"a window of at least 60 seconds that divides a day "
                             f"(15m, hourly, daily), got {value!r}")
        return seconds

    @field_validator("format")
    @classmethod
    def _parquet_installed(cls, value: str) -> str:
        if value == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ValueError("parquet needs pyarrow, which is not installed: pip install "
                                 "'crossdock[parquet]'") from None
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        except ValueError as exc:
            raise ValueError(f"not a template: {exc}") from None
        unknown = sorted(fields - set(PATH_FIELDS))
        if unknown:
            raise ValueError(f"unknown field {{{unknown[0]}}}; a path names "
                             + ", ".join(f"{{{f}}}" for f in PATH_FIELDS))
        if "seq" not in fields:
            raise ValueError("must hold {seq}: two files of one window would otherwise "
                             "have the same name")
        moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        try:
            name = _render(value, "d", moment, moment, 1, "jsonl")
            FilePut(_Nowhere(), name, b"")
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(str(exc)) from None
        return value

    def window(self) -> Window:
        max_bytes = None if self.max_mb is None else int(self.max_mb * 1024 * 1024)
        return Window(self.every, self.max_rows, max_bytes)


class ServerExportSettings(ExportSettings):
    """What the file destinations on a server (SFTP, FTP) have besides: the server, the
    account and the folder."""

    host: str = Field(min_length=1, description="the server's name or address")
    username: str = Field(min_length=1)
    remote_dir: str = Field(default="", description="the folder file names start in")

    @field_validator("remote_dir")
    @classmethod
    def _folder(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError(f"a folder without '..', got {value!r}")
        return value.rstrip("/")


def absolute_path(value: str | None) -> str | None:
    """An optional setting naming a file of this machine: an absolute path (a validator:
    `field_validator("ca_file")(absolute_path)`)."""
    if value is not None and not PurePosixPath(value).is_absolute():
        raise ValueError(f"an absolute path, got {value!r}")
    return value


class ExportOptions(BaseModel):
    """The mapping's `options:` for a file destination: `columns`, column name -> dotted path
    into the routed payload. CSV files hold these columns (DEFAULT_COLUMNS when none are
    named); JSON lines hold these keys, or the whole routed payload when none are named."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] | None = None

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one column, or leave columns out")
        for name, path in value.items():
            if not path or any(not part.strip() for part in path.split(".")):
                raise ValueError(f"{name}: a dotted path into the routed payload "
                                 f"(traits.email), got {path!r}")
        return value


class _Nowhere(FileStore):
    """A store for checking a name only."""

    kind = "nowhere"


SettingsE = TypeVar("SettingsE", bound=ExportSettings)


def export_manifest(name: str, description: str, docs_url: str) -> Manifest:
    """The manifest of a file destination: every message type; one file per send, so the
    batch sizes are the engine's window, not a request's limit."""
    return Manifest(name=name, description=description, docs_url=docs_url,
                    message_types=ALL_MESSAGE_TYPES, batch_size=1, concurrency=2,
                    auth="credentials")


class ExportDestination(Destination[SettingsE, ExportOptions]):
    """Base of the file destinations: its rows as one file (`export_file`) in `store()`."""

    def store(self) -> FileStore:
        raise NotImplementedError

    def prefix(self) -> str:
        """Folders put before every file name (an S3 prefix): "" or "a/b/"."""
        return ""

    def window(self) -> Window:
        return self.settings.window()

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        return export_file(items, self.store(), self.settings, self.opts.columns,
                           self.destination_name or self.plugin_name, self.prefix())


def export_file(items: Sequence[OutboxItem], store: FileStore, settings: ExportSettings,
                columns: dict[str, str] | None, destination: str, prefix: str = ""
                ) -> list[Planned]:
    """One file of `items` (the rows of one window, as the engine leases them) in `store`,
    and a `Rejected` for each row the format cannot hold (a CSV column holding an object, a
    value Parquet cannot type in its column): those are dead letters naming the column and
    the rule; the rest of the file is written."""
    if settings.format == "parquet":
        kept, data, rejected = _parquet(items, columns or DEFAULT_COLUMNS,
                                        settings.compression)
    else:
        kept, data, rejected = _text_rows(items, settings.format, columns)
    planned: list[Planned] = list(rejected)
    if not kept:
        return planned
    every = settings.every
    first = min(item.created_at for item in kept)
    start = datetime.fromtimestamp(first - first % every, UTC)
    end = datetime.fromtimestamp(first - first % every + every, UTC)
    # Parquet compresses inside the file (its gzip codec): the name keeps .parquet.
    gzipped = settings.compression == "gzip" and settings.format != "parquet"
    ext = settings.format + (".gz" if gzipped else "")
    name = prefix + _render(settings.path, destination, start, end, kept[0].id, ext)
    if gzipped:
        # mtime=0: the same rows make the same bytes, so a retried file is identical.
        data = gzip.compress(data, compresslevel=6, mtime=0)
    markers: tuple[Marker, ...] = ()
    if settings.marker == "manifest":
        manifest = {"file": name.rsplit("/", 1)[-1], "rows": len(kept), "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "window_start": start.isoformat().replace("+00:00", "Z"),
                    "window_end": end.isoformat().replace("+00:00", "Z"),
                    "format": settings.format, "compression": settings.compression,
                    "first_id": kept[0].id, "last_id": kept[-1].id}
        markers = (Marker(f"{name}.manifest.json", json_content(manifest) + b"\n",
                          "application/json"),)
    elif settings.marker == "success":
        folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        markers = (Marker(f"{folder}_SUCCESS"),)
    content_type = "application/gzip" if gzipped else _CONTENT_TYPES[settings.format]
    planned.append(PlannedSend(FilePut(store, name, data, content_type, markers), kept))
    return planned


def _text_rows(items: Sequence[OutboxItem], fmt: str, columns: dict[str, str] | None
               ) -> tuple[list[OutboxItem], bytes, list[Planned]]:
    """(the items written, the file's bytes before gzip, a Rejected per item left out) of a
    JSON-lines or CSV file."""
    rows: list[bytes] = []
    kept: list[OutboxItem] = []
    rejected: list[Planned] = []
    header = b""
    if fmt == "csv":
        header = _csv_line(list((columns or DEFAULT_COLUMNS).keys()))
    for item in items:
        try:
            if fmt == "csv":
                rows.append(_csv_row(item.payload, columns or DEFAULT_COLUMNS))
            else:
                rows.append(_json_row(item.payload, columns))
        except _Unwritable as exc:
            rejected.append(Rejected(item, str(exc)))
            continue
        kept.append(item)
    return kept, header + b"".join(rows), rejected


#: the kinds of value a Parquet column holds (`_kind`); a column takes its values' kind
_KINDS = ("true/false", "whole numbers", "numbers", "text")
_INT64 = (-(2**63), 2**63 - 1)


def _kind(value: Any) -> str:
    """A value's kind as a Parquet column would hold it (bool before int: True is an int)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "whole numbers"
    if isinstance(value, float):
        return "numbers"
    if isinstance(value, str):
        return "text"
    return "object" if isinstance(value, dict) else "list" if isinstance(value, list) else (
        type(value).__name__)


def _parquet(items: Sequence[OutboxItem], columns: dict[str, str], compression: str
             ) -> tuple[list[OutboxItem], bytes, list[Planned]]:
    """A Parquet file of `columns`, one typed column each: a column's type is that of its
    values (whole numbers mixed with fractions make numbers), so the same rows make the
    same file. A row whose value Parquet cannot type in its column (text where the file's
    column holds numbers, an object, a list, a number beyond 64 bits) is Rejected, named by
    the column and the rule; the rest of the file is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = [[first_value(item.payload, path) for path in columns.values()]
              for item in items]
    # A column's kind: the kind of its first value, numbers widening whole numbers.
    kinds: list[str | None] = []
    for i in range(len(columns)):
        seen = [_kind(row[i]) for row in values if row[i] is not None]
        kind = next((k for k in seen if k in _KINDS), None)
        if kind in ("whole numbers", "numbers") and "numbers" in seen:
            kind = "numbers"
        kinds.append(kind)
    kept: list[OutboxItem] = []
    rows: list[list[Any]] = []
    rejected: list[Planned] = []
    for item, row in zip(items, values, strict=True):
        problem = _parquet_problem(row, columns, kinds)
        if problem:
            rejected.append(Rejected(item, problem))
            continue
        kept.append(item)
        rows.append(row)
    if not kept:
        return [], b"", rejected
    types = {"true/false": pa.bool_(), "whole numbers": pa.int64(), "numbers": pa.float64(),
             "text": pa.string(), None: pa.string()}
    table = pa.table({name: pa.array([float(r[i]) if kinds[i] == "numbers" and r[i] is not None
                                      else r[i] for r in rows], type=types[kinds[i]])
                      for i, name in enumerate(columns)})
    out = io.BytesIO()
    pq.write_table(table, out, compression="gzip" if compression == "gzip" else "none")
    return kept, out.getvalue(), rejected


def _parquet_problem(row: list[Any], columns: dict[str, str], kinds: list[str | None]
                     ) -> str | None:
    for (name, path), value, kind in zip(columns.items(), row, kinds, strict=True):
        if value is None:
            continue
        have = _kind(value)
        if have in ("object", "list") or have not in _KINDS:
            return (f"parquet column {name!r} ({path}) holds {'an' if have == 'object' else 'a'}"
                    f" {have}; a Parquet column here takes text, numbers or true/false: map a "
                    "path to a plain value, or write jsonl")
        if have == "whole numbers" and not _INT64[0] <= value <= _INT64[1]:
            return (f"parquet column {name!r} ({path}) holds {value}, beyond a 64-bit whole "
                    "number")
        if have == kind or (have == "whole numbers" and kind == "numbers"):
            continue
        return (f"parquet column {name!r} ({path}) holds {have} where the file's column "
                f"holds {kind} (its first value's type): one type per column")
    return None


class _Unwritable(Exception):
    """A row the format cannot hold; the message is the dead letter's reason."""


def _render(template: str, destination: str, start: datetime, end: datetime, seq: int,
            ext: str) -> str:
    return template.format(destination=destination, date=start, window_start=start,
                           window_end=end, seq=seq, ext=ext)


def _json_row(payload: dict[str, Any], columns: dict[str, str] | None) -> bytes:
    body = payload if columns is None else {
        name: first_value(payload, path) for name, path in columns.items()}
    try:
        return json_content(body) + b"\n"
    except (TypeError, ValueError) as exc:
        raise _Unwritable(f"jsonl: the row has a value JSON cannot hold ({exc})") from None


def _csv_row(payload: dict[str, Any], columns: dict[str, str]) -> bytes:
    cells: list[str] = []
    for name, path in columns.items():
        value = first_value(payload, path)
        if isinstance(value, dict | list):
            kind = "an object" if isinstance(value, dict) else "a list"
            raise _Unwritable(f"csv column {name!r} ({path}) holds {kind}; a CSV cell takes "
                              "text, a number or true/false: map a path to a plain value, or "
                              "write jsonl")
        text = stringify(value) or ""
        if "\x00" in text:
            raise _Unwritable(f"csv column {name!r} ({path}) holds a NUL character, which "
                              "CSV readers refuse")
        cells.append(text)
    return _csv_line(cells)


def _csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    # RFC 4180: CRLF line ends, quotes only where needed.
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue().encode()
