"""The demo's S3 export: gzipped JSON lines into a bucket of a local S3-compatible server
(moto_server, started for the demo). One row a file (max_rows: 1): the demo ends when nothing
waits, and rows held for an hourly window would wait for it."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

from crossdock.hookspecs import DemoContext
from crossdock.plugins.s3.testserver import s3_destination, s3_server
from crossdock.testing.demo import DemoDestination


def demo_destination(context: DemoContext) -> DemoDestination:
    folder = Path(context.keep(tempfile.TemporaryDirectory(prefix="crossdock-s3-")))
    server = context.keep(s3_server(folder / "moto.log"))
    bucket = server.new_bucket()

    def received() -> list[dict[str, Any]]:
        return [{"key": key, "rows": [json.loads(line)
                                      for line in gzip.decompress(body).splitlines()]}
                for key, body in sorted(server.objects(bucket).items())]

    def describe(entry: dict[str, Any]) -> str:
        events = [row.get("event") or row.get("type") for row in entry["rows"]]
        return f"s3://{bucket}/{entry['key']}: {', '.join(map(str, events))}"

    return DemoDestination(
        "s3-lake", s3_destination(server, bucket, compression="gzip", max_rows=1,
                                  prefix="lake"), received, describe)
