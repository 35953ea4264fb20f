"""The SFTP sender: a `FilePut` into a folder of an `SftpServer`, with asyncssh (the
`crossdock[sftp]` extra; docs/destinations/sftp.md says why asyncssh).

A file appears whole or not at all: it is written to `.NAME.<random>.part` beside its name,
flushed (fsync@openssh.com where the server has it), then renamed over the name with
posix-rename@openssh.com, which replaces an existing file atomically. A server without that
extension gets a remove and a plain rename: the name is missing for a moment, never partial.
A failed write removes its part file; a killed daemon may leave one, never a partial file
under the name. Markers are put the same way, after the file.

The host key is always checked: against the fingerprints of the settings, or the known_hosts
file (the daemon user's ~/.ssh/known_hosts by default); an unknown or changed key is refused
before any password or key is offered, and the rows are retried (fixing the setting delivers
them). One connection per file; the egress guard checks the address connected to.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from typing import Any

from crossdock.delivery.guard import guarded_connect
from crossdock.delivery.sending import SendOptions, SendRefused
from crossdock.sends import FilePut, Receipt, Sendable, SftpServer


class HostKeyRefused(ConnectionError):
    """The server's host key is not the one the settings trust."""


class SftpSender:
    """Puts files on SFTP servers."""

    async def send(self, send: Sendable, options: SendOptions) -> Receipt:
        if not isinstance(send, FilePut) or not isinstance(send.store, SftpServer):
            raise SendRefused(f"the SFTP sender cannot send {send.kind}")
        try:
            import asyncssh
        except ModuleNotFoundError as exc:  # retried: installing the extra delivers the rows
            raise ModuleNotFoundError("the sftp destination needs asyncssh: pip install "
                                      "'crossdock[sftp]'") from exc
        store = send.store
        sock = await guarded_connect(store.host, store.port, options.allow_private_network)
        offered: list[str] = []
        try:
            conn = await asyncssh.connect(sock=sock, **_login(asyncssh, store, offered))
        except asyncssh.HostKeyNotVerifiable as exc:
            sock.close()
            seen = f" (it offered {offered[-1]})" if offered else ""
            raise HostKeyRefused(
                f"the host key of {store.host}:{store.port} is not trusted{seen}: give its "
                "fingerprint in settings.host_key_fingerprint or add it to known_hosts") from exc
        except BaseException:
            sock.close()
            raise
        async with conn, conn.start_sftp_client() as sftp:
            await _put(sftp, store, put_name(store, send.name), send.content)
            for marker in send.markers:
                await _put(sftp, store, put_name(store, marker.name), marker.content)
        return Receipt(send.target(), f"wrote {len(send.content)} bytes")


def put_name(store: SftpServer, name: str) -> str:
    return posixpath.join(store.remote_dir, name) if store.remote_dir else name


async def _put(sftp: Any, store: SftpServer, path: str, content: bytes) -> None:
    import asyncssh

    folder, base = posixpath.split(path)
    if folder:
        await sftp.makedirs(folder, exist_ok=True)
    part = posixpath.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.part")
    try:
        async with sftp.open(part, "wb") as out:
            await out.write(content)
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                await out.fsync()
        try:
            await sftp.posix_rename(part, path)
        except asyncssh.SFTPOpUnsupported:
            # SFTP v3's rename refuses to replace: make room, then rename.
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(path)
            await sftp.rename(part, path)
    except BaseException:
        with contextlib.suppress(Exception):
            await sftp.remove(part)
        raise


def _login(asyncssh: Any, store: SftpServer, offered: list[str]) -> dict[str, Any]:
    """asyncssh.connect's keyword arguments for `store`: the user, the credentials, and the
    host key check (fingerprints, a known_hosts file, or the default file)."""
    args: dict[str, Any] = {"host": store.host, "port": store.port,
                            "username": store.username, "connect_timeout": 30,
                            # no ~/.ssh keys, agent or config of the daemon's user: only what
                            # the settings give
                            "agent_path": None, "config": None, "client_keys": None,
                            "password": None}
    if store.password is not None:
        args["password"] = store.password.get_secret_value()
    if store.private_key is not None:
        passphrase = store.passphrase.get_secret_value() if store.passphrase else None
        args["client_keys"] = [asyncssh.import_private_key(
            store.private_key.get_secret_value(), passphrase)]
    if store.host_key_fingerprints:
        trusted = frozenset(store.host_key_fingerprints)

        class _Client(asyncssh.SSHClient):  # type: ignore[misc]
            def validate_host_public_key(self, host: str, addr: str, port: int,
                                         key: Any) -> bool:
                fingerprint = str(key.get_fingerprint("sha256"))
                offered.append(fingerprint)
                return fingerprint in trusted

        # An empty known_hosts list: every key goes to validate_host_public_key.
        args["known_hosts"] = asyncssh.import_known_hosts("")
        args["client_factory"] = _Client
    elif store.known_hosts is not None:
        args["known_hosts"] = store.known_hosts
    return args
