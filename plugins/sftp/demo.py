"""The demo's SFTP export: gzipped JSON lines onto a local SFTP server (asyncssh's, run for
the demo on 127.0.0.1 with a password user and a host key made for it; the tests use
Debian's OpenSSH server, which the demo cannot make users for). One row a file
(max_rows: 1): the demo ends when nothing waits."""

from __future__ import annotations

import asyncio
import gzip
import json
import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crossdock.hookspecs import DemoContext
from crossdock.testing.demo import DemoDestination

USER = "demo"


@contextmanager
def sftp_server(root: Path, password: str) -> Iterator[tuple[int, str]]:
    """An SFTP server on 127.0.0.1 serving `root`, in a thread of its own until the block
    ends: (its port, its host key's SHA256 fingerprint)."""
    import asyncssh

    host_key = asyncssh.generate_private_key("ssh-ed25519")

    class Server(asyncssh.SSHServer):  # type: ignore[misc]
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, given: str) -> bool:
            return username == USER and secrets.compare_digest(given, password)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="demo-sftp", daemon=True)
    thread.start()
    async def start() -> Any:
        return await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[host_key], server_factory=Server,
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel,
                                                             chroot=str(root).encode()))

    listening = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield (listening.sockets[0].getsockname()[1],
               str(host_key.get_fingerprint("sha256")))
    finally:
        listening.close()
        asyncio.run_coroutine_threadsafe(listening.wait_closed(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def demo_destination(context: DemoContext) -> DemoDestination:
    root = Path(context.keep(tempfile.TemporaryDirectory(prefix="crossdock-sftp-")))
    password = secrets.token_urlsafe(12)
    port, fingerprint = context.keep(sftp_server(root, password))

    def received() -> list[dict[str, Any]]:
        return [{"name": str(path.relative_to(root)),
                 "rows": [json.loads(line) for line in gzip.decompress(path.read_bytes())
                          .splitlines()]}
                for path in sorted(root.rglob("*.jsonl.gz"))]

    def describe(entry: dict[str, Any]) -> str:
        events = [row.get("event") or row.get("type") for row in entry["rows"]]
        return f"sftp:{entry['name']}: {', '.join(map(str, events))}"

    return DemoDestination(
        "sftp-partner", {"plugin": "sftp", "settings": {
            "host": "127.0.0.1", "port": port, "username": USER, "password": password,
            "host_key_fingerprint": fingerprint, "remote_dir": "drop",
            "compression": "gzip", "max_rows": 1}}, received, describe)
