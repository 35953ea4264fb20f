"""What `crossdock run` says when it is up: where it stores and where it listens."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from crossdock.daemon import run_daemon
from crossdock.loader import parse_config


async def start_and_stop(raw: dict[str, Any], tmp_path: Path,
                         caplog: pytest.LogCaptureFixture) -> list[str]:
    """Run the daemon of config `raw` until it is up, stop it; every crossdock log line."""
    loaded = parse_config(raw, base_dir=tmp_path, env={})
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="crossdock")
    await asyncio.wait_for(run_daemon(
        loaded, collector_app_factory=lambda pipeline: Starlette(), stop_event=stop,
        on_ready=lambda engine, scheduler: stop.set()), 30)
    return [r.getMessage() for r in caplog.records]


def running_line(lines: list[str]) -> str:
    (line,) = [line for line in lines if line.startswith("crossdock running")]
    return line


async def test_the_running_line_names_the_collector_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # It named the outbox and the destinations but not where the collector listens, so an
    # operator could not tell from the log where to point SDKs (or that port 0 got a port).
    line = running_line(await start_and_stop(
        {"outbox": {"url": "sqlite:///o.db"}, "collector": {"host": "127.0.0.1", "port": 0}},
        tmp_path, caplog))
    assert "collector http://127.0.0.1:" in line and "collector http://127.0.0.1:0," not in line


async def test_the_running_line_says_when_there_is_no_collector(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    line = running_line(await start_and_stop(
        {"outbox": {"url": "sqlite:///o.db"}, "collector": {"enabled": False}}, tmp_path, caplog))
    assert "collector off" in line


async def test_the_running_line_hides_the_outbox_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pg_url: str,
) -> None:
    # A password given as ?password= (and sslpassword=) was printed as it was. The test
    # server trusts local connections, so the password is carried but never checked.
    secret = "hunter2-start-line"
    url = f"{pg_url}&password={secret}&sslpassword={secret}".replace(
        "postgresql://postgres@", f"postgresql://postgres:{secret}@")
    lines = await start_and_stop({"outbox": {"url": url}, "collector": {"enabled": False}},
                                 tmp_path, caplog)
    line = running_line(lines)
    assert "postgres:***@" in line and "&password=***&sslpassword=***" in line
    assert not [line for line in lines if secret in line]
