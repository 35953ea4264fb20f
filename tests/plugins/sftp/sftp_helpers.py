"""A real OpenSSH server for the SFTP tests: Debian's sshd (openssh-server; .ci/run installs
it) started on a free port of 127.0.0.1 with a config of its own, its host key made for the
run, and two users made for the run (useradd, so the tests run as root, as CI does): one
signing in with a password, one with an SSH key whose private half is encrypted. Removed at
the end."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from crossdock.testing.fakeserver import free_port, server_process

SSHD = "/usr/sbin/sshd"
PASSPHRASE = "correct horse battery staple"


@dataclass
class SshUser:
    name: str
    home: Path
    password: str


@dataclass
class SshServer:
    port: int
    folder: Path
    host_key_fingerprint: str
    #: a host key this server does not have
    other_fingerprint: str
    #: a known_hosts line for this server
    known_hosts_line: str
    password_user: SshUser
    key_user: SshUser
    #: the key user's private key, encrypted with PASSPHRASE
    private_key: str

    def files(self, user: SshUser) -> list[str]:
        """Every file under the user's home, as paths relative to it."""
        return sorted(str(p.relative_to(user.home)) for p in user.home.rglob("*")
                      if p.is_file())


def sshd_unavailable() -> str | None:
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing: apt-get install openssh-server (.ci/run does)"
    if os.geteuid() != 0:
        return "sshd's password and key users are made with useradd, which needs root"
    return None


def _user(folder: Path) -> SshUser:
    name = f"cdx{secrets.token_hex(4)}"
    home = folder / name
    home.mkdir()
    password = secrets.token_urlsafe(16)
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
    # a password on both users: an account without one is locked, and sshd then refuses keys
    subprocess.run(["chpasswd"], input=f"{name}:{password}", text=True, check=True)
    shutil.chown(home, name, name)
    return SshUser(name, home, password)


def _fingerprint(path: Path) -> str:
    return str(asyncssh.read_public_key(str(path)).get_fingerprint("sha256"))


@contextmanager
def sshd(log: Path) -> Iterator[SshServer]:
    # Not under pytest's temporary folders: they are 0700 root, and the users need their homes.
    folder = Path(tempfile.mkdtemp(prefix="crossdock-sshd-"))
    folder.chmod(0o755)
    users: list[SshUser] = []
    try:
        for name in ("host", "other", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N",
                            PASSPHRASE if name == "client" else "", "-f", str(folder / name)],
                           check=True)
        users = [_user(folder), _user(folder)]
        authorized = folder / "authorized"
        authorized.mkdir()
        (authorized / users[1].name).write_text((folder / "client.pub").read_text())
        port = free_port()
        config = folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host'}",
            f"PidFile {folder / 'sshd.pid'}", f"AuthorizedKeysFile {authorized}/%u",
            "StrictModes no", "UsePAM no", "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "Subsystem sftp internal-sftp", "ForceCommand internal-sftp",
            f"AllowUsers {users[0].name} {users[1].name}", "LogLevel VERBOSE", ""]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation folder
        with server_process([SSHD, "-D", "-e", "-f", str(config)], port, log):
            host_pub = (folder / "host.pub").read_text().split()
            yield SshServer(port, folder, _fingerprint(folder / "host.pub"),
                            _fingerprint(folder / "other.pub"),
                            f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n", users[0],
                            users[1], (folder / "client").read_text())
    finally:
        for user in users:
            subprocess.run(["userdel", user.name], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def sftp_destination(server: SshServer, user: SshUser, **settings: Any) -> dict[str, Any]:
    """A config entry of an sftp destination signing in as `user` with a password (the
    password user) or the encrypted key (the key user), trusting the server's host key."""
    login: dict[str, Any] = (
        {"password": user.password} if user is server.password_user
        else {"private_key": server.private_key, "passphrase": PASSPHRASE})
    delivery = settings.pop("delivery", {"allow_private_network": True})
    return {"plugin": "sftp", "settings": {
        "host": "127.0.0.1", "port": server.port, "username": user.name,
        "host_key_fingerprint": server.host_key_fingerprint, **login, **settings},
        "delivery": delivery}
