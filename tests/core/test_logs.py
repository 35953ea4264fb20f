"""What the `crossdock` command logs: `--log-format json` (one object per line, with the
destination, message id, attempt and outcome of each settled message, from a real delivery to
the webhook contract fake), and APScheduler's once-a-second "Running job" lines kept out of
-v."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from crossdock.cli import cli
from crossdock.loader import parse_config
from crossdock.logs import configure_logging
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.plugins.webhook.fake import make_app as webhook_app
from crossdock.scheduler import Scheduler
from crossdock.testing.fakeserver import serve


@pytest.fixture
def bare_root() -> Iterator[logging.Logger]:
    """The root logger, restored after the test. Under pytest it has capture handlers (added
    again when the test's call starts), and configure_logging leaves such a root alone: a
    test empties `root.handlers` right before, as a fresh `crossdock` process has it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = logging.getLogger("apscheduler").level
    root.handlers = []
    try:
        yield root
    finally:
        root.handlers = handlers
        root.setLevel(level)
        logging.getLogger("apscheduler").setLevel(chatty)


def payload(message_id: str) -> dict[str, Any]:
    return {"type": "track", "messageId": message_id, "timestamp": "2024-05-01T12:00:00Z",
            "userId": "u-1", "event": "Order Completed", "properties": {"total": "10"},
            "traits": {}, "identities": {"userId": "u-1"}, "context": {}, "rendered": {}}


def test_json_logs_carry_each_settled_message(tmp_path: Path, bare_root: logging.Logger) -> None:
    fake = WebhookFake()
    with serve(webhook_app(fake)) as server:
        config = tmp_path / "crossdock.yaml"
        config.write_text(yaml.safe_dump({
            "outbox": {"url": "sqlite:///outbox.db"}, "collector": {"enabled": False},
            "destinations": {"hook": {
                "plugin": "webhook", "settings": {"url": f"{server.url}/in"},
                "delivery": {"allow_private_network": True, "ordered": False,
                             "batch_size": 1, "concurrency": 1}}}}))
        box = SQLiteOutbox(tmp_path / "outbox.db")
        try:
            box.enqueue([NewRow("hook", m, payload(m)) for m in ("m-1", "m-2", "m-3")],
                        now=time.time())
        finally:
            box.close()
        fake.script([{"status": 400, "body": "no thanks"}, {"status": 503, "body": "busy"}])
        bare_root.handlers = []  # pytest's capture handler joins at the test's call
        # Both options after the subcommand, where an operator adds them.
        result = CliRunner().invoke(cli, ["deliver", "--once", "-c", str(config), "--quiet",
                                          "--log-format", "json", "-vv"])
    assert result.exit_code == 3, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    settled = {r["message_id"]: r for r in records if "outcome" in r}
    assert sorted(r["outcome"] for r in settled.values()) == ["dead", "delivered", "retry"]
    for record in settled.values():
        assert record["destination"] == "hook" and record["attempt"] == 1
        assert record["level"] == {"dead": "warning", "retry": "info",
                                   "delivered": "debug"}[record["outcome"]]
    dead = next(r for r in settled.values() if r["outcome"] == "dead")
    assert dead["reason"] == "HTTP 400: no thanks"
    retry = next(r for r in settled.values() if r["outcome"] == "retry")
    assert "503" in retry["reason"]
    # The batch summaries name their destination too.
    assert any(r.get("destination") == "hook" and "outcome" not in r for r in records)


def test_an_unknown_log_format_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["--log-format", "xml", "validate"])
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json'" in result.output


async def scheduler_output(tmp_path: Path, root: logging.Logger, verbose: int) -> str:
    """What the daemon's timers print at `verbose`, over three runs of a fast timer."""
    out = io.StringIO()
    root.handlers = []
    configure_logging(verbose, stream=out)
    loaded = parse_config({"outbox": {"url": "sqlite:///o.db"}}, base_dir=tmp_path, env={})
    outbox = SQLiteOutbox(tmp_path / "o.db")
    runs = asyncio.Queue[None]()

    async def tick() -> None:
        runs.put_nowait(None)

    scheduler = Scheduler(loaded, outbox)
    scheduler.add_timer("tick", 0.02, tick)
    scheduler.start()
    try:
        for _ in range(3):
            await asyncio.wait_for(runs.get(), 10)
    finally:
        scheduler.shutdown()
        outbox.close()
        for handler in root.handlers:
            handler.flush()
    return out.getvalue()


async def test_the_scheduler_chatter_is_not_shown_at_v(
    tmp_path: Path, bare_root: logging.Logger,
) -> None:
    # At -v, "Running job "due-sweep ..."" and "... executed successfully" came every second.
    assert "Running job" not in await scheduler_output(tmp_path, bare_root, 1)
    assert "Running job" in await scheduler_output(tmp_path, bare_root, 2)
