"""Two FTP server processes (pyftpdlib) for the FTP tests of a module: plain FTP and FTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crossdock.plugins.ftp.testserver import FtpTestServer, ftp_server


@pytest.fixture(scope="module")
def ftp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpTestServer]:
    with ftp_server(tmp_path_factory.mktemp("ftp"), tls=False) as server:
        yield server


@pytest.fixture(scope="module")
def ftps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpTestServer]:
    with ftp_server(tmp_path_factory.mktemp("ftps"), tls=True) as server:
        yield server
