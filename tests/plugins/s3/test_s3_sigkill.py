"""`crossdock run` exporting to S3 (moto_server on 127.0.0.1) is SIGKILLed while a multipart
upload is in flight, then restarted: no partial object ever appears, and every row lands in
exactly one final object (the kept batch is put again under its name, replacing nothing but
itself; rows are never in two objects)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.s3.testserver import S3Server, s3_destination
from crossdock.testing.outbox_file import read_only

pytestmark = pytest.mark.slow

ROWS = 3 * 400
ROWS_PER_FILE = 400
PAD = 30_000  # ~12 MB a file: three 5 MiB parts, so the kill can land mid-upload
LEASE = 3.0


def states(db: Path) -> Counter[str]:
    with read_only(db) as outbox:
        return Counter(row["state"] for row in outbox["outbox"].rows_where(select="state"))


def wait_for(done: Callable[[], bool], what: str, timeout: float, log: Path) -> None:
    """Poll until done(); the bound only turns a hang into a clear failure."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}: {log.read_text()[-3000:]}")
        time.sleep(0.01)


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CROSSDOCK_LOAD_PLUGINS": "s3"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "crossdock.cli", "run", "-c", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def rows_in(objects: dict[str, bytes]) -> Counter[str]:
    """How often each message id is in the final objects; every line must be whole JSON."""
    seen: Counter[str] = Counter()
    for key, body in objects.items():
        lines = body.splitlines()
        assert body.endswith(b"\n") and lines, f"{key} is not a whole file"
        seen.update(json.loads(line)["messageId"] for line in lines)
    return seen


def test_sigkill_mid_upload_then_restart_puts_every_row_in_exactly_one_object(
        tmp_path: Path, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    config = tmp_path / "crossdock.yaml"
    entry = s3_destination(s3, bucket, max_rows=ROWS_PER_FILE, multipart_threshold_mb=5,
                           part_size_mb=5,
                           delivery={"allow_private_network": True, "lease": f"{LEASE:g}s",
                                     "concurrency": 1})
    config.write_text(yaml.safe_dump({
        "outbox": {"url": "sqlite:///outbox.db"}, "collector": {"enabled": False},
        "destinations": {"lake": entry}}))
    db = tmp_path / "outbox.db"
    box = SQLiteOutbox(db)
    try:
        # Accepted now, as the pipeline writes them: full files are due at once.
        box.enqueue([NewRow("lake", f"m{i:05d}", {"messageId": f"m{i:05d}", "type": "track",
                                                  "pad": "x" * PAD}) for i in range(ROWS)])
    finally:
        box.close()

    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: bool(s3.uploads(bucket)), "a multipart upload in flight", 120, log)
        os.kill(daemon.pid, signal.SIGKILL)
        assert daemon.wait(30) == -signal.SIGKILL
        at_kill = states(db)
        assert at_kill["leased"] > 0, at_kill  # killed with a file's rows in hand
        left = s3.uploads(bucket)
        objects = s3.objects(bucket)
        # What the kill left is an upload no reader sees; every object there is whole.
        assert left, "the upload completed before the kill: nothing tested"
        rows_in(objects)

        restarted = start(config, log)
        wait_for(lambda: states(db) == Counter({"delivered": ROWS}),
                 "every row delivered after the restart", 180, log)
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(30) == 0, log.read_text()[-2000:]
    finally:
        # a daemon still running when an assertion failed
        for alive in [p for p in (daemon, restarted) if p is not None and p.poll() is None]:
            alive.kill()
            alive.wait(10)

    final = s3.objects(bucket)
    seen = rows_in(final)
    assert set(seen) == {f"m{i:05d}" for i in range(ROWS)}
    twice = {m: n for m, n in seen.items() if n > 1}
    assert not twice, f"rows in more than one object: {sorted(twice)[:5]}"
    assert len(final) == ROWS // ROWS_PER_FILE
    assert s3.uploads(bucket) == []  # the killed upload was aborted by the retry
    print(f"\nSIGKILL with {at_kill['leased']} rows leased and an upload of {left} in "
          f"flight; after the restart {len(final)} objects hold the {ROWS} rows once each")
