"""Helpers of the end-to-end tests: the `crossdock` command as a real process, the
destinations' contract fakes on 127.0.0.1 (the fixtures are in conftest.py), configs and
message files, and the outbox read back from its SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from crossdock.plugins.slack.fake import SlackFake
from crossdock.testing.fakescript import FakeState
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.outbox_file import read_only

#: `python -m crossdock.cli` runs exactly what the `crossdock` console script runs
CROSSDOCK = [sys.executable, "-m", "crossdock.cli"]


#: the plugins these tests exercise; other installed plugins cannot change their results
PLUGINS = "webhook,slack"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `crossdock` process: wide, colourless output so tests can read
    tables, and only the webhook and slack plugins loaded (`all_plugins_env` loads all)."""
    env = dict(os.environ)
    env.update({"COLUMNS": "240", "NO_COLOR": "1", "TERM": "dumb",
                "CROSSDOCK_LOAD_PLUGINS": PLUGINS}, **extra)
    return env


def all_plugins_env() -> dict[str, str]:
    """`cli_env` with every installed plugin loaded (the demo uses whatever is installed)."""
    env = cli_env()
    del env["CROSSDOCK_LOAD_PLUGINS"]
    return env


def crossdock(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
              input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `crossdock ARGS` to the end and return what it did (never raises on exit codes)."""
    return subprocess.run([*CROSSDOCK, *args], capture_output=True, text=True,
                          timeout=timeout, env=env or cli_env(), input=input)


@dataclass(frozen=True)
class Ran:
    """What an in-process `crossdock` run did, read like a CompletedProcess."""
    returncode: int
    stdout: str
    stderr: str


def crossdock_in_process(*args: str, env: dict[str, str] | None = None) -> Ran:
    """Run `crossdock ARGS` inside the test process (click's CliRunner, the same command
    objects `main` attaches). A test that repeats one command over many configs uses this and
    keeps one real process per behaviour: a process start costs about a second here."""
    from click.testing import CliRunner

    from crossdock.cli import cli

    result = CliRunner().invoke(cli, list(args), env=env or cli_env(), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def start_crossdock(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running `crossdock ARGS` (the daemon) writing its output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen([*CROSSDOCK, *args], stdout=out, stderr=subprocess.STDOUT,
                                env=cli_env())


def wait_for(done: Callable[[], bool], what: str, timeout: float,
             detail: Callable[[], str] | None = None) -> None:
    """Poll until `done()`; fail naming `what` (and `detail()`) after `timeout` seconds.
    The bound only turns a hang into a clear failure; nothing asserts how fast it was."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            extra = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}{extra}")
        time.sleep(0.1)


@dataclass
class Fake:
    """A contract fake serving on loopback, steered the way another process would: over HTTP
    (`POST /_fake/script`), and read on its own loop so a list is never seen mid-append."""

    state: FakeState
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    def script(self, replies: list[Any] | None = None, *, latency: float | None = None,
               reset: bool = False) -> None:
        body: dict[str, Any] = {"replies": replies or [], "reset": reset}
        if latency is not None:
            body["latency"] = latency
        response = httpx.post(f"{self.url}/_fake/script", json=body, timeout=10)
        assert response.status_code == 200, response.text

    def snapshot(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_fake/received", timeout=30)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def received(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.server.call(lambda: list(self.state.received))
        return entries

    def count(self) -> int:
        n: int = self.server.call(lambda: len(self.state.received))
        return n


def slack_url(fake: Fake) -> str:
    assert isinstance(fake.state, SlackFake)
    return fake.state.url(fake.url)


def webhook_destination(url: str, **extra: Any) -> dict[str, Any]:
    """A webhook destination's config entry pointing at a loopback fake (so it opts into
    private networks)."""
    settings = {"url": url, **extra.pop("settings", {})}
    delivery = {"allow_private_network": True, **extra.pop("delivery", {})}
    return {"plugin": "webhook", "settings": settings, "delivery": delivery, **extra}


def slack_destination(url: str, **extra: Any) -> dict[str, Any]:
    """A Slack destination's config entry pointing at a loopback fake (any host, private
    networks allowed)."""
    settings = {"webhook_url": url, "allow_any_host": True, **extra.pop("settings", {})}
    delivery = {"allow_private_network": True, **extra.pop("delivery", {})}
    return {"plugin": "slack", "settings": settings, "delivery": delivery, **extra}


def write_config(folder: Path, destinations: dict[str, Any], name: str = "crossdock.yaml",
                 **top: Any) -> Path:
    """crossdock.yaml in `folder` with its outbox at folder/outbox.db and no collector."""
    config = {"outbox": {"url": "sqlite:///outbox.db"}, "collector": {"enabled": False},
              **top, "destinations": destinations}
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_messages(path: Path, messages: list[Any]) -> Path:
    """A JSON lines file; a `str` item is written as the line itself (for malformed lines)."""
    with path.open("w") as out:
        for message in messages:
            out.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
    return path


def track(message_id: str, event: str = "Order Completed", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": message_id, "userId": fields.pop("userId", "u-1"),
            "event": event, "timestamp": "2024-05-01T12:00:00Z", **fields}


@dataclass(frozen=True)
class Row:
    destination: str
    message_id: str
    state: str
    attempts: int
    next_attempt_at: float
    updated_at: float
    last_error: str | None


def outbox_rows(db: Path) -> list[Row]:
    """Every outbox row, read through a plain read-only SQLite connection (the outbox's own
    code is what is under test), in id order."""
    with read_only(db) as outbox:
        return [Row(**row) for row in outbox["outbox"].rows_where(
            select="destination, message_id, state, attempts, next_attempt_at, updated_at, "
                   "last_error", order_by="id")]


def one_row(db: Path, destination: str, message_id: str) -> Row:
    rows = [r for r in outbox_rows(db)
            if (r.destination, r.message_id) == (destination, message_id)]
    assert len(rows) == 1, f"expected one row for {destination}/{message_id}, found {rows}"
    return rows[0]


def status_json(config: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`crossdock status --json`, parsed."""
    result = crossdock("status", "-c", str(config), "--json", env=env)
    assert result.returncode == 0, result.stderr
    data: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return data


def dead_letters_json(config: Path) -> list[dict[str, Any]]:
    result = crossdock("dead-letters", "list", "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data
