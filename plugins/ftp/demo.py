"""The demo's FTP export: gzipped JSON lines onto a local FTPS server (pyftpdlib's, started
for the demo on 127.0.0.1 with a certificate from a CA made for it). One row a file
(max_rows: 1): the demo ends when nothing waits."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

from crossdock.hookspecs import DemoContext
from crossdock.plugins.ftp.testserver import ftp_server
from crossdock.testing.demo import DemoDestination


def demo_destination(context: DemoContext) -> DemoDestination:
    folder = Path(context.keep(tempfile.TemporaryDirectory(prefix="crossdock-ftp-")))
    server = context.keep(ftp_server(folder, tls=True))

    def received() -> list[dict[str, Any]]:
        return [{"name": str(path.relative_to(server.root)),
                 "rows": [json.loads(line) for line in gzip.decompress(path.read_bytes())
                          .splitlines()]}
                for path in sorted(server.root.rglob("*.jsonl.gz"))]

    def describe(entry: dict[str, Any]) -> str:
        events = [row.get("event") or row.get("type") for row in entry["rows"]]
        return f"ftps:{entry['name']}: {', '.join(map(str, events))}"

    return DemoDestination("ftp-legacy", server.destination(
        compression="gzip", max_rows=1, remote_dir="upload"), received, describe)
