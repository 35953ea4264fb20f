"""Senders: the engine's I/O for the non-HTTP sends of `crossdock.sends`, one per send kind.

    senders = Senders.default()            # the built-ins, then the register_senders hook
    receipt = await senders.for_kind("file:local").send(put)

HTTP requests go through the transport (transport.py); every other send goes to the sender
registered for its `kind` (what a sender is: sending.py, which the built-in senders below
import, so this registry can import them). A sender does one send and reports a `Receipt`,
or raises: a `SendRefused` when the send can never succeed as it is (the items are
dead-lettered with its reason), anything else when it may succeed later (the items are
retried with backoff, as for a connection error). The worker applies the destination's
timeout and rate limit around it.

Built in:

    file:local     LocalFolderSender: a FilePut written into a folder of this machine,
                   atomically (a temporary name beside it, then a rename)
    file:s3        S3Sender (s3.py): into an S3 bucket, one PutObject or a multipart upload
                   completed at the end (boto3, the crossdock[s3] extra)
    file:sftp      SftpSender (sftp.py): onto an SFTP server, a temporary name then an atomic
                   rename, the host key checked (asyncssh, the crossdock[sftp] extra)
    file:ftp       FtpSender (ftp.py): onto an FTP server, FTPS where offered or required, a
                   temporary name then a rename (the standard library's ftplib)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from crossdock.delivery.sending import Sender, SendOptions, SendRefused
from crossdock.sends import FilePut, LocalFolder, Receipt, Sendable


class Senders:
    """The senders by send kind."""

    def __init__(self) -> None:
        self._by_kind: dict[str, Sender] = {}

    def register(self, kind: str, sender: Sender) -> None:
        if kind in self._by_kind and self._by_kind[kind] is not sender:
            raise ValueError(f"two senders for the send kind {kind!r}")
        self._by_kind[kind] = sender

    def for_kind(self, kind: str) -> Sender | None:
        return self._by_kind.get(kind)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._by_kind)

    @classmethod
    def default(cls) -> Senders:
        """The built-in senders and every plugin's (the `register_senders` hook)."""
        from crossdock.delivery.ftp import FtpSender
        from crossdock.delivery.s3 import S3Sender
        from crossdock.delivery.sftp import SftpSender
        from crossdock.plugin_manager import plugin_manager

        senders = cls()
        senders.register("file:local", LocalFolderSender())
        senders.register("file:s3", S3Sender())
        senders.register("file:sftp", SftpSender())
        senders.register("file:ftp", FtpSender())
        plugin_manager().hook.register_senders(register=senders.register)
        return senders


class LocalFolderSender:
    """Writes a `FilePut` into a `LocalFolder`: to `.<name>.<random>.part` beside the final
    name, flushed to disk, then renamed over the final name (atomic on one file system), so a
    reader sees the old file or the whole new one, never a part; a crash leaves at most a
    `.part` file, never a partial file under the name."""

    async def send(self, send: Sendable, options: SendOptions) -> Receipt:
        if not isinstance(send, FilePut) or not isinstance(send.store, LocalFolder):
            raise SendRefused(f"the local folder sender cannot send {send.kind}")
        return await asyncio.to_thread(self._write, send, send.store)

    def _write(self, put: FilePut, store: LocalFolder) -> Receipt:
        folder = Path(store.path)
        if not folder.is_dir():
            # An unmounted volume or a folder not yet made: the operator can fix it.
            raise FileNotFoundError(f"{store.path} is not a folder")
        self._put(folder, store, put.name, put.content)
        # Markers only once the file is in place: a consumer waiting for one never reads a
        # file still being written.
        for marker in put.markers:
            self._put(folder, store, marker.name, marker.content)
        return Receipt(put.target(), f"wrote {len(put.content)} bytes")

    def _put(self, folder: Path, store: LocalFolder, name: str, content: bytes) -> None:
        final = folder.joinpath(*name.split("/"))
        if not final.resolve().is_relative_to(folder.resolve()):
            raise SendRefused(f"{name} leads out of {store.path} (a link inside it?)")
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            with open(part, "xb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, final)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        _sync_folder(final.parent)


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entry for the renamed file, so the rename survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
