"""The ftp destination against real FTP server processes (pyftpdlib on 127.0.0.1, plain and
FTPS): rows through a SQLite outbox and the delivery engine into files, FTPS required and
verified (a server without TLS and an untrusted certificate refused), tls: auto falling back
to plain FTP only where the server offers no TLS, an old file under the name replaced whole,
a wrong password retried, the egress guard, and the settings' errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.ftp import FtpDestination
from crossdock.plugins.ftp.testserver import FtpTestServer
from crossdock.testing.clock import ManualClock
from crossdock.testing.conformance import imports_beyond_the_public_api

T0 = datetime(2024, 5, 1, 12, 10, tzinfo=UTC).timestamp()
NOW = T0 + 3600


def config(tmp_path: Path, entry: dict[str, Any]) -> LoadedConfig:
    return parse_config({"destinations": {"legacy": entry}}, base_dir=tmp_path, env={})


def enqueue(box: SQLiteOutbox, n: int) -> str:
    """n rows; the name of the file they make under the default path template."""
    box.enqueue([NewRow("legacy", f"m{i}", {"messageId": f"m{i}", "event": "Saved"})
                 for i in range(n)], now=T0)
    row = box.row("legacy", "m0")
    assert row is not None
    return f"exports/legacy/2024/05/01/1200-{row['id']}.jsonl"


def ids(path: Path) -> list[str]:
    return [json.loads(line)["messageId"] for line in path.read_text().splitlines()]


def last_error(box: SQLiteOutbox) -> str:
    row = box.row("legacy", "m0")
    assert row is not None
    return str(row["last_error"])


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_ftps_required_stores_the_file_over_tls(
        tmp_path: Path, box: SQLiteOutbox, ftps: FtpTestServer) -> None:
    name = enqueue(box, 3)
    folder = f"in-{tmp_path.name}"
    report = await deliver_once(config(tmp_path, ftps.destination(
        remote_dir=folder, marker="success")), box, clock=ManualClock(NOW))
    assert (report.delivered, report.retried) == (3, 0)
    assert ids(ftps.root / folder / name) == ["m0", "m1", "m2"]
    # no part file beside it; the marker after it
    assert [f for f in files(ftps.root) if f.startswith(folder)] == [
        f"{folder}/{name}", f"{folder}/{name.rsplit('/', 1)[0]}/_SUCCESS"]


async def test_a_server_without_tls_is_refused_when_tls_is_required(
        tmp_path: Path, box: SQLiteOutbox, ftp: FtpTestServer) -> None:
    enqueue(box, 1)
    folder = f"in-{tmp_path.name}"
    report = await deliver_once(config(tmp_path, ftp.destination(
        tls="required", remote_dir=folder)), box, clock=ManualClock(NOW))
    assert report.retried == 1
    assert (f"TlsNotOffered: 127.0.0.1:{ftp.port} does not offer TLS") in last_error(box)
    assert ftp.password not in last_error(box)
    assert not (ftp.root / folder).exists()  # nothing stored, the password never sent


async def test_tls_auto_uses_tls_where_offered_and_plain_ftp_where_not(
        tmp_path: Path, box: SQLiteOutbox, ftp: FtpTestServer, ftps: FtpTestServer) -> None:
    name = enqueue(box, 1)
    folder = f"in-{tmp_path.name}"
    plain = ftp.destination(tls="auto", remote_dir=folder)
    assert (await deliver_once(config(tmp_path, plain), box,
                               clock=ManualClock(NOW))).delivered == 1
    assert ids(ftp.root / folder / name) == ["m0"]
    # the FTPS server with tls: auto is used over TLS: its certificate must be trusted
    other = tmp_path / "other"
    other.mkdir()
    box2 = SQLiteOutbox(other / "outbox.db")
    try:
        enqueue(box2, 1)
        untrusted = ftps.destination(tls="auto", remote_dir=folder, ca_file=None)
        report = await deliver_once(config(tmp_path, untrusted), box2, clock=ManualClock(NOW))
        assert report.retried == 1
        assert "CERTIFICATE_VERIFY_FAILED" in last_error(box2)
    finally:
        box2.close()


async def test_a_file_already_under_the_name_is_replaced_whole(
        tmp_path: Path, box: SQLiteOutbox, ftps: FtpTestServer) -> None:
    name = enqueue(box, 2)
    folder = f"in-{tmp_path.name}"
    old = ftps.root / folder / name
    old.parent.mkdir(parents=True)
    old.write_text("an older attempt\n" * 1000)
    await deliver_once(config(tmp_path, ftps.destination(remote_dir=folder)), box,
                       clock=ManualClock(NOW))
    assert ids(old) == ["m0", "m1"]


async def test_a_wrong_password_is_retried_and_never_shown(
        tmp_path: Path, box: SQLiteOutbox, ftps: FtpTestServer) -> None:
    enqueue(box, 1)
    report = await deliver_once(config(tmp_path, ftps.destination(password="not-it")), box,
                                clock=ManualClock(NOW))
    assert report.retried == 1
    assert "530" in last_error(box) and "not-it" not in last_error(box)


async def test_a_loopback_server_needs_the_private_network_opt_in(
        tmp_path: Path, box: SQLiteOutbox, ftps: FtpTestServer) -> None:
    enqueue(box, 1)
    report = await deliver_once(config(tmp_path, ftps.destination(delivery={})), box,
                                clock=ManualClock(NOW))
    assert report.retried == 1
    assert "egress guard: 127.0.0.1 is loopback" in last_error(box)


def test_settings_name_what_is_wrong() -> None:
    problems = "\n".join(FtpDestination.parse_settings({
        "host": "h", "username": "u", "tls": "implicit", "ca_file": "ca.pem",
        "remote_dir": "../up"})[1])
    assert "settings.password: " in problems
    assert "settings.tls: " in problems
    assert "settings.ca_file: " in problems and "an absolute path" in problems
    assert "settings.remote_dir: " in problems


def test_the_plugin_imports_only_the_public_api() -> None:
    assert imports_beyond_the_public_api(FtpDestination) == []
