"""The sftp destination against a real OpenSSH server (sshd on 127.0.0.1, users made for the
run): rows through a SQLite outbox and the delivery engine into files, signing in with a
password or an encrypted SSH key, the host key checked (a wrong key and an unknown host
refused, a known_hosts file), an old file under the name replaced whole, the egress guard, and
the settings' errors."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sftp_helpers import PASSPHRASE, SshServer, sftp_destination

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.sftp import SftpDestination
from crossdock.testing.clock import ManualClock
from crossdock.testing.conformance import imports_beyond_the_public_api

T0 = datetime(2024, 5, 1, 12, 10, tzinfo=UTC).timestamp()
NOW = T0 + 3600


def config(tmp_path: Path, entry: dict[str, Any]) -> LoadedConfig:
    return parse_config({"destinations": {"partner": entry}}, base_dir=tmp_path, env={})


def enqueue(box: SQLiteOutbox, n: int) -> str:
    """n rows; the name of the file they make under the default path template."""
    box.enqueue([NewRow("partner", f"m{i}", {"messageId": f"m{i}", "event": "Saved"})
                 for i in range(n)], now=T0)
    row = box.row("partner", "m0")
    assert row is not None
    return f"exports/partner/2024/05/01/1200-{row['id']}.jsonl"


def ids(path: Path) -> list[str]:
    return [json.loads(line)["messageId"] for line in path.read_text().splitlines()]


async def test_a_password_user_gets_the_file_in_its_folder(
        tmp_path: Path, box: SQLiteOutbox, ssh_server: SshServer) -> None:
    user = ssh_server.password_user
    name = enqueue(box, 3)
    folder = f"in-{tmp_path.name}"
    report = await deliver_once(config(tmp_path, sftp_destination(
        ssh_server, user, remote_dir=folder, marker="manifest")), box, clock=ManualClock(NOW))
    assert (report.delivered, report.retried) == (3, 0)
    assert ids(user.home / folder / name) == ["m0", "m1", "m2"]
    # no part file beside it, the manifest after it
    assert [f for f in ssh_server.files(user) if f.startswith(folder)] == [
        f"{folder}/{name}", f"{folder}/{name}.manifest.json"]


async def test_a_key_user_signs_in_with_an_encrypted_key(
        tmp_path: Path, box: SQLiteOutbox, ssh_server: SshServer) -> None:
    user = ssh_server.key_user
    name = enqueue(box, 2)
    folder = f"in-{tmp_path.name}"
    report = await deliver_once(config(tmp_path, sftp_destination(
        ssh_server, user, remote_dir=folder)), box, clock=ManualClock(NOW))
    assert report.delivered == 2
    assert ids(user.home / folder / name) == ["m0", "m1"]


async def test_a_file_already_under_the_name_is_replaced_whole(
        tmp_path: Path, box: SQLiteOutbox, ssh_server: SshServer) -> None:
    # What an earlier attempt at the same kept batch may have left: replaced, never appended.
    user = ssh_server.password_user
    name = enqueue(box, 2)
    folder = f"in-{tmp_path.name}"
    old = user.home / folder / name
    old.parent.mkdir(parents=True)
    old.write_text("an older attempt\n" * 1000)
    for made in (old, *old.relative_to(user.home).parents):
        shutil.chown(user.home / made, user.name, user.name)  # made here as root
    await deliver_once(config(tmp_path, sftp_destination(ssh_server, user, remote_dir=folder)),
                       box, clock=ManualClock(NOW))
    assert ids(old) == ["m0", "m1"]


async def test_a_wrong_host_key_is_refused_and_the_rows_wait(
        tmp_path: Path, box: SQLiteOutbox, ssh_server: SshServer) -> None:
    user = ssh_server.password_user
    enqueue(box, 1)
    folder = f"in-{tmp_path.name}"
    report = await deliver_once(config(tmp_path, sftp_destination(
        ssh_server, user, remote_dir=folder,
        host_key_fingerprint=ssh_server.other_fingerprint)), box, clock=ManualClock(NOW))
    assert report.retried == 1
    row = box.row("partner", "m0")
    assert row is not None
    assert (f"HostKeyRefused: the host key of 127.0.0.1:{ssh_server.port} is not trusted "
            f"(it offered {ssh_server.host_key_fingerprint})") in row["last_error"]
    assert user.password not in row["last_error"]
    assert not (user.home / folder).exists()


async def test_an_unknown_host_is_refused_and_a_known_hosts_file_trusts_it(
        tmp_path: Path, box: SQLiteOutbox, ssh_server: SshServer) -> None:
    user = ssh_server.key_user
    name = enqueue(box, 1)
    folder = f"in-{tmp_path.name}"
    known = tmp_path / "known_hosts"
    known.write_text("")
    entry = sftp_destination(ssh_server, user, remote_dir=folder, known_hosts=str(known))
    del entry["settings"]["host_key_fingerprint"]
    clock = ManualClock(NOW)
    assert (await deliver_once(config(tmp_path, entry), box, clock=clock)).retried == 1
    row = box.row("partner", "m0")
    assert row is not None and "is not trusted" in row["last_error"]
    known.write_text(ssh_server.known_hosts_line)
    clock.advance(86_400)
    assert (await deliver_once(config(tmp_path, entry), box, clock=clock)).delivered == 1
    assert ids(user.home / folder / name) == ["m0"]


async def test_a_loopback_server_needs_the_private_network_opt_in(
        tmp_path: Path, box: SQLiteOutbox, ssh_server: SshServer) -> None:
    enqueue(box, 1)
    report = await deliver_once(config(tmp_path, sftp_destination(
        ssh_server, ssh_server.password_user, delivery={})), box, clock=ManualClock(NOW))
    assert report.retried == 1
    row = box.row("partner", "m0")
    assert row is not None and "egress guard: 127.0.0.1 is loopback" in row["last_error"]


def test_settings_name_what_is_wrong(ssh_server: SshServer) -> None:
    def problems(**settings: Any) -> str:
        return "\n".join(SftpDestination.parse_settings(
            {"host": "h", "username": "u", **settings})[1])

    assert "give password or private_key" in problems()
    assert "settings.host_key_fingerprint: " in problems(
        password="p", host_key_fingerprint="MD5:aa:bb")
    assert "give host_key_fingerprint or known_hosts, not both" in problems(
        password="p", host_key_fingerprint=ssh_server.host_key_fingerprint,
        known_hosts="/etc/ssh/known")
    wrong = problems(private_key=ssh_server.private_key, passphrase="not it")
    assert "private_key: cannot be decrypted: Incorrect passphrase" in wrong
    assert "private_key: is encrypted: give its passphrase" in problems(
        private_key=ssh_server.private_key)
    assert "not a private key" in problems(private_key="hello")
    assert "passphrase goes with private_key" in problems(password="p", passphrase="x")
    assert problems(private_key=ssh_server.private_key, passphrase=PASSPHRASE) == ""
    assert ssh_server.private_key not in wrong and "not it" not in wrong


def test_the_plugin_imports_only_the_public_api() -> None:
    assert imports_beyond_the_public_api(SftpDestination) == []
