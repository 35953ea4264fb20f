"""One S3-compatible server process (moto_server) for the S3 tests of a session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crossdock.plugins.s3.testserver import S3Server, s3_server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server
