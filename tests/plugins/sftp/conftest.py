"""One OpenSSH server (sshd) with its users for the SFTP tests of a session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sftp_helpers import SshServer, sshd, sshd_unavailable


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    reason = sshd_unavailable()
    if reason:
        pytest.skip(reason)
    with sshd(tmp_path_factory.mktemp("sshd") / "sshd.log") as server:
        yield server
