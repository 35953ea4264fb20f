"""What `crossdock run` says when it is up: where it stores and where it listens."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from starlette.applications import Starlette

from crossdock.config import parse_config
from crossdock.daemon import run_daemon


async def test_the_running_line_names_the_collector_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # It named the outbox and the destinations but not where the collector listens, so an
    # operator could not tell from the log where to point SDKs (or that port 0 got a port).
    loaded = parse_config({"outbox": {"url": "sqlite:///o.db"},
                           "collector": {"host": "127.0.0.1", "port": 0}},
                          base_dir=tmp_path, env={})
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="crossdock.daemon")
    daemon = asyncio.create_task(run_daemon(
        loaded, collector_app_factory=lambda pipeline: Starlette(), stop_event=stop,
        on_ready=lambda engine, scheduler: stop.set()))
    await asyncio.wait_for(daemon, 30)
    (line,) = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("crossdock running")]
    assert "collector http://127.0.0.1:" in line and "collector http://127.0.0.1:0," not in line


async def test_the_running_line_says_when_there_is_no_collector(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    loaded = parse_config({"outbox": {"url": "sqlite:///o.db"}, "collector": {"enabled": False}},
                          base_dir=tmp_path, env={})
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="crossdock.daemon")
    await asyncio.wait_for(run_daemon(
        loaded, collector_app_factory=lambda pipeline: Starlette(), stop_event=stop,
        on_ready=lambda engine, scheduler: stop.set()), 30)
    assert any("collector off" in r.getMessage() for r in caplog.records)
