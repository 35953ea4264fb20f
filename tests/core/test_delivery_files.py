"""The non-HTTP send seam, for real: a destination that hands the engine files (`FilePut` into
a `LocalFolder`) delivered through the SQLite outbox and the delivery engine, written into a
real folder atomically, retried under the same name, refused when the name leaves the folder;
and a send kind with no sender, or one a plugin adds through `register_senders`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.delivery.senders import LocalFolderSender, Senders
from crossdock.delivery.sending import SendOptions
from crossdock.destination import (
    ALL_MESSAGE_TYPES,
    Destination,
    FilePut,
    LocalFolder,
    Manifest,
    OutboxItem,
    Planned,
    PlannedSend,
    Receipt,
    Sendable,
    json_content,
)
from crossdock.hookspecs import hookimpl
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugin_manager import plugin_manager
from crossdock.testing.clock import ManualClock

DAY = 86_400.0


class FolderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: str
    kind: str = "file"


@dataclass(frozen=True)
class Pigeon(Sendable):
    """A send of a kind no built-in sender makes."""

    note: str

    @property
    def kind(self) -> str:
        return "pigeon"

    def target(self) -> str:
        return "the loft"


class FolderDestination(Destination[FolderSettings]):
    """Each batch as one JSON-lines file, named by the message ids it holds."""

    manifest = Manifest(name="folder", description="JSON lines into a folder",
                        docs_url="docs/delivery.md", message_types=ALL_MESSAGE_TYPES,
                        batch_size=10)

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        if self.settings.kind == "pigeon":
            return [PlannedSend(Pigeon(items[0].message_id), list(items))]
        return [PlannedSend(FilePut(LocalFolder(self.settings.folder), file_name(items),
                                    lines(items), "application/x-ndjson"), list(items))]


def file_name(items: Sequence[OutboxItem]) -> str:
    digest = hashlib.sha256("\n".join(sorted(i.message_id for i in items)).encode())
    return f"batches/{digest.hexdigest()[:16]}.jsonl"


def lines(items: Sequence[OutboxItem]) -> bytes:
    return b"".join(json_content(item.payload) + b"\n" for item in items)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[SQLiteOutbox]:
    outbox = SQLiteOutbox(tmp_path / "outbox.db")
    yield outbox
    outbox.close()


def loaded(tmp_path: Path, folder: Path, **settings: Any) -> LoadedConfig:
    return parse_config({"destinations": {"files": {
        "plugin": "folder", "settings": {"folder": str(folder), **settings},
        "delivery": {"batch_size": 10}}}}, base_dir=tmp_path, env={},
        types={"folder": FolderDestination})


def enqueue(box: SQLiteOutbox, clock: ManualClock, n: int = 3) -> None:
    box.enqueue([NewRow("files", f"m{i}", {"n": i, "event": "Saved"}) for i in range(n)],
                now=clock.now)


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


async def test_a_batch_becomes_one_file_holding_every_item(tmp_path: Path,
                                                           box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clock = ManualClock()
    enqueue(box, clock)
    report = await deliver_once(loaded(tmp_path, out), box, clock=clock)
    assert (report.delivered, report.retried, report.dead, report.requests) == (3, 0, 0, 1)
    (name,) = files(out)  # no .part file left beside it
    assert name.startswith("batches/") and name.endswith(".jsonl")
    written = [json.loads(line) for line in (out / name).read_text().splitlines()]
    assert written == [{"n": 0, "event": "Saved"}, {"n": 1, "event": "Saved"},
                       {"n": 2, "event": "Saved"}]


async def test_a_failed_put_is_retried_and_lands_once_under_the_same_name(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "not-yet"
    clock = ManualClock()
    enqueue(box, clock)
    config = loaded(tmp_path, out)
    report = await deliver_once(config, box, clock=clock)
    assert (report.delivered, report.retried) == (0, 3)
    row = box.row("files", "m0")
    assert row is not None
    assert row["last_error"] == (f"error sending folder {out}: batches/"
                                 f"{file_name_of(box)}.jsonl: FileNotFoundError: {out} is not "
                                 "a folder")

    out.mkdir()  # the operator mounts the volume
    clock.advance(DAY)
    report = await deliver_once(config, box, clock=clock)
    assert report.delivered == 3
    assert files(out) == [f"batches/{file_name_of(box)}.jsonl"]


def file_name_of(box: SQLiteOutbox) -> str:
    return hashlib.sha256("\n".join(f"m{i}" for i in range(3)).encode()).hexdigest()[:16]


async def test_a_put_that_cannot_replace_the_name_leaves_no_part_file(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out = tmp_path / "out"
    (out / "batches" / f"{file_name_of(box)}.jsonl").mkdir(parents=True)  # a folder in the way
    clock = ManualClock()
    enqueue(box, clock)
    report = await deliver_once(loaded(tmp_path, out), box, clock=clock)
    assert report.retried == 3
    assert "IsADirectoryError" in (report.destinations["files"].last_error or "")
    assert files(out) == []


async def test_a_name_that_leads_out_of_the_folder_is_dead_lettered(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "batches").symlink_to(elsewhere)
    clock = ManualClock()
    enqueue(box, clock)
    report = await deliver_once(loaded(tmp_path, out), box, clock=clock)
    assert report.dead == 3
    assert box.dead_letters("files", 10)[0].reason.endswith(
        f"leads out of {out} (a link inside it?)")
    assert files(elsewhere) == []


async def test_a_send_kind_without_a_sender_is_retried_naming_the_known_kinds(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    clock = ManualClock()
    enqueue(box, clock, 1)
    report = await deliver_once(loaded(tmp_path, tmp_path, kind="pigeon"), box, clock=clock)
    assert report.retried == 1
    assert report.destinations["files"].last_error == (
        "no sender for pigeon sends (known: file:ftp, file:local, file:s3, file:sftp)")


class _Loft:
    """A sender for pigeons that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, send: Sendable, options: SendOptions) -> Receipt:
        assert isinstance(send, Pigeon) and options == SendOptions("files", False)
        self.sent.append(send.note)
        return Receipt(send.target(), "cooed")


async def test_a_plugin_adds_a_send_kind_through_register_senders(
        tmp_path: Path, box: SQLiteOutbox) -> None:
    loft = _Loft()

    class Plugin:
        @hookimpl
        def register_senders(self, register: Any) -> None:
            register("pigeon", loft)

    pm = plugin_manager()
    pm.register(Plugin(), name="test-pigeons")
    try:
        assert Senders.default().kinds == ["file:ftp", "file:local", "file:s3", "file:sftp",
                                           "pigeon"]
        clock = ManualClock()
        enqueue(box, clock, 1)
        report = await deliver_once(loaded(tmp_path, tmp_path, kind="pigeon"), box,
                                    clock=clock)
    finally:
        pm.unregister(name="test-pigeons")
    assert report.delivered == 1 and loft.sent == ["m0"]


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../up", "a/../b", "a//b", "a\\b", "./a"])
def test_a_file_name_must_stay_inside_its_store(name: str) -> None:
    with pytest.raises(ValueError, match="a file name is a relative path"):
        FilePut(LocalFolder("/srv/out"), name, b"")


def test_a_local_folder_is_an_absolute_path() -> None:
    with pytest.raises(ValueError, match="must be an absolute path"):
        LocalFolder("out")


async def test_the_sender_replaces_a_file_of_the_same_name_whole(tmp_path: Path) -> None:
    put = FilePut(LocalFolder(str(tmp_path)), "a/b.txt", b"first")
    options = SendOptions("files")
    await LocalFolderSender().send(put, options)
    receipt = await LocalFolderSender().send(FilePut(put.store, put.name, b"second"), options)
    assert receipt == Receipt(f"folder {tmp_path}: a/b.txt", "wrote 6 bytes")
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"second"
    assert files(tmp_path) == ["a/b.txt"]
