"""The demo's file export: every message as gzipped JSON lines into a temporary folder the
demo removes. One row a file (max_rows: 1): the demo ends when nothing waits, and rows held
for an hourly window would wait for it."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

from crossdock.hookspecs import DemoContext
from crossdock.testing.demo import DemoDestination


def demo_destination(context: DemoContext) -> DemoDestination:
    folder = Path(context.keep(tempfile.TemporaryDirectory(prefix="crossdock-files-")))

    def received() -> list[dict[str, Any]]:
        return [{"name": str(path.relative_to(folder)),
                 "rows": [json.loads(line) for line in gzip.decompress(path.read_bytes())
                          .splitlines()]}
                for path in sorted(folder.rglob("*.jsonl.gz"))]

    def describe(entry: dict[str, Any]) -> str:
        events = [row.get("event") or row.get("type") for row in entry["rows"]]
        return f"{entry['name']}: {len(events)} rows ({', '.join(map(str, events))})"

    return DemoDestination(
        "files", {"plugin": "files", "settings": {
            "folder": str(folder), "compression": "gzip", "max_rows": 1,
            "path": "events/{date:%Y/%m/%d}/{window_start:%H%M}-{seq}.{ext}"}},
        received, describe)
