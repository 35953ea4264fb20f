"""The FTP sender: a `FilePut` into a folder of an `FtpServer`, FTPS where the server offers
it, with the standard library's ftplib (no dependency; docs/destinations/ftp.md).

A file appears whole or not at all: it is stored as `.NAME.<random>.part` beside its name, then
renamed over the name (RNFR/RNTO). A server that refuses to rename over an existing file gets
a DELE first: the name is missing for a moment, never partial. A failed store deletes its part
file; a killed daemon may leave one, never a partial file under the name. Markers are put the
same way, after the file.

TLS: explicit FTPS (AUTH TLS, then PROT P so the data connections are encrypted too), the
server's certificate verified against the system's or the settings' CAs and its name. Passive
mode only, and ftplib connects the data connections to the control connection's address,
never to the one a PASV reply names. ftplib blocks, so each file is put in a thread.

The egress guard: the host is resolved and every address checked before each file (ftplib
connects by name, which TLS needs to verify the certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import io
import posixpath
import socket
import ssl
import uuid

from crossdock.delivery.guard import check_address
from crossdock.delivery.sending import SendOptions, SendRefused
from crossdock.sends import FilePut, FtpServer, Receipt, Sendable

#: seconds ftplib waits on a socket (the engine's own timeout covers the whole send)
SOCKET_TIMEOUT = 60.0


class TlsNotOffered(ConnectionError):
    """tls: required, and the server answered AUTH TLS with a refusal."""


class FtpSender:
    """Puts files on FTP servers."""

    async def send(self, send: Sendable, options: SendOptions) -> Receipt:
        if not isinstance(send, FilePut) or not isinstance(send.store, FtpServer):
            raise SendRefused(f"the FTP sender cannot send {send.kind}")
        store = send.store
        if not options.allow_private_network:
            found = await asyncio.get_running_loop().getaddrinfo(
                store.host, store.port, type=socket.SOCK_STREAM)
            for *_, sockaddr in found:
                check_address(str(sockaddr[0]))
        return await asyncio.to_thread(_put_all, send, store)


def _put_all(put: FilePut, store: FtpServer) -> Receipt:
    ftp, secure = _login(store)
    try:
        _put(ftp, _path(store, put.name), put.content)
        for marker in put.markers:
            _put(ftp, _path(store, marker.name), marker.content)
        with contextlib.suppress(*ftplib.all_errors):
            ftp.quit()
    finally:
        ftp.close()
    how = "over TLS" if secure else "in the clear (the server offers no TLS)"
    return Receipt(put.target(), f"stored {len(put.content)} bytes {how}")


def _path(store: FtpServer, name: str) -> str:
    return posixpath.join(store.remote_dir, name) if store.remote_dir else name


def _login(store: FtpServer) -> tuple[ftplib.FTP, bool]:
    """A signed-in connection and whether it is encrypted."""
    password = store.password.get_secret_value()
    if store.tls == "off":
        ftp = ftplib.FTP(timeout=SOCKET_TIMEOUT)
        ftp.connect(store.host, store.port)
        ftp.login(store.username, password)
        return ftp, False
    context = ssl.create_default_context(cafile=store.ca_file)
    tls = ftplib.FTP_TLS(context=context, timeout=SOCKET_TIMEOUT)
    tls.connect(store.host, store.port)
    try:
        tls.auth()
    except ftplib.error_perm as exc:  # 5xx: the server has no TLS
        if store.tls == "required":
            tls.close()
            raise TlsNotOffered(f"{store.host}:{store.port} does not offer TLS "
                                f"(AUTH TLS: {exc}); tls: required refuses plain FTP") from exc
        # tls: auto, on a server without TLS: go on in the clear, as the operator allowed.
        ftplib.FTP.login(tls, store.username, password)
        return tls, False
    except BaseException:
        tls.close()
        raise
    tls.login(store.username, password)
    tls.prot_p()  # the data connections encrypted too
    return tls, True


def _put(ftp: ftplib.FTP, path: str, content: bytes) -> None:
    folder, base = posixpath.split(path)
    _make_folders(ftp, folder)
    part = posixpath.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.part")
    try:
        ftp.storbinary(f"STOR {part}", io.BytesIO(content))
        try:
            ftp.rename(part, path)
        except ftplib.error_perm:
            # A server that will not rename over a file: make room, then rename.
            with contextlib.suppress(ftplib.error_perm):
                ftp.delete(path)
            ftp.rename(part, path)
    except BaseException:
        with contextlib.suppress(*ftplib.all_errors):
            ftp.delete(part)
        raise


def _make_folders(ftp: ftplib.FTP, folder: str) -> None:
    """MKD each folder of `folder` that is missing (FTP has no "make parents")."""
    if not folder:
        return
    made = "/" if folder.startswith("/") else ""
    for part in folder.strip("/").split("/"):
        made = posixpath.join(made, part) if made else part
        with contextlib.suppress(ftplib.error_perm):  # 550: already there
            ftp.mkd(made)
