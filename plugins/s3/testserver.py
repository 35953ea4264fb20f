"""An S3-compatible server for the tests and the demo: moto's standalone server
(`moto_server`, from moto[server] on PyPI, in crossdock[test]) started as a real process on
127.0.0.1, and a boto3 client of it. It plays the part a contract fake plays for an HTTP
destination, but it is a whole S3 implementation: moto checks multipart rules (5 MiB parts,
part ETags), server-side encryption headers and bucket names as S3 does."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossdock.testing.fakeserver import free_port, server_process

#: moto takes any key; these only have to be the same on both sides
KEY_ID = "AKIAEXPORTSTEST00001"
SECRET = "exports-test-secret-key-0000000000000000"
REGION = "eu-west-1"


@dataclass
class S3Server:
    url: str
    process: subprocess.Popen[bytes]

    @functools.cached_property
    def _client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

    def client(self) -> Any:
        return self._client

    def new_bucket(self) -> str:
        name = f"exports-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={
            "LocationConstraint": REGION})
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        client = self.client()
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                for o in listed}

    def uploads(self, bucket: str) -> list[str]:
        """Keys of the multipart uploads begun and neither completed nor aborted."""
        found = self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [u["Key"] for u in found]


def moto_server_program() -> str | None:
    """moto_server beside this Python, or None when moto[server] is not installed."""
    return shutil.which("moto_server", path=os.path.dirname(sys.executable))


@contextmanager
def s3_server(log: Path) -> Iterator[S3Server]:
    """moto_server on a free port of 127.0.0.1 until the block ends."""
    port = free_port()
    program = moto_server_program()
    assert program, "moto_server is missing: pip install -e '.[test]'"
    with server_process([program, "-H", "127.0.0.1", "-p", str(port)], port, log) as process:
        yield S3Server(f"http://127.0.0.1:{port}", process)


def s3_destination(server: S3Server, bucket: str, **settings: Any) -> dict[str, Any]:
    """A config entry of an s3 destination writing into `bucket` on the test server."""
    delivery = settings.pop("delivery", {"allow_private_network": True})
    return {"plugin": "s3", "settings": {
        "bucket": bucket, "endpoint_url": server.url, "region": REGION,
        "access_key_id": KEY_ID, "secret_access_key": SECRET, **settings},
        "delivery": delivery}
