"""The `crossdock` command-line tool, in process through click's CliRunner, on real config
files, a real SQLite outbox and (for deliver) the webhook contract fake over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from pydantic import BaseModel
from rich.console import Console

from crossdock import __version__
from crossdock.cli import cli
from crossdock.cli import common as cli_module
from crossdock.cli import deliver as deliver_cli
from crossdock.cli import root as root_cli
from crossdock.destination import Destination, DestinationContext, PlannedRequest, Rejected
from crossdock.hookspecs import hookimpl
from crossdock.json_shape import DEPTH_RULE, FINITE_RULE, MAX_DEPTH
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugin_manager import plugin_manager
from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.plugins.webhook.fake import make_app as webhook_app
from crossdock.testing.fakeserver import RunningServer, serve

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXX"


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich draws tables 80 columns wide when not on a terminal; give it room so cells are
    not cut short (the commands read the module's consoles at call time)."""
    monkeypatch.setattr(cli_module, "console", Console(width=200, no_color=True))
    monkeypatch.setattr(cli_module, "err_console",
                        Console(width=200, no_color=True, stderr=True))




def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def write_config(tmp_path: Path, destinations: dict[str, Any]) -> Path:
    path = tmp_path / "crossdock.yaml"
    path.write_text(yaml.safe_dump({
        "outbox": {"url": "sqlite:///outbox.db"}, "collector": {"enabled": False},
        "destinations": destinations,
    }, sort_keys=False))
    return path


def hook(url: str = "http://127.0.0.1:9/in", **extra: Any) -> dict[str, Any]:
    """A webhook destination, opted into private networks: its receivers are on loopback."""
    return {"plugin": "webhook", "settings": {"url": url},
            "delivery": {"allow_private_network": True}, **extra}


def payload(message_id: str) -> dict[str, Any]:
    """A routed payload as the route step would store it (see crossdock.route)."""
    return {"type": "track", "messageId": message_id, "timestamp": "2024-05-01T12:00:00Z",
            "userId": "u-1", "event": "Order Completed", "properties": {"total": "10"},
            "traits": {}, "identities": {"userId": "u-1"}, "context": {}, "rendered": {}}


# -- --version, validate ----------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"crossdock, version {__version__}"


def test_validate_ok_counts_the_enabled_destinations(tmp_path: Path) -> None:
    config = write_config(tmp_path, {
        "hook": hook(),
        "alerts": {"plugin": "slack", "settings": {"webhook_url": SLACK_URL}},
        "off": {**hook(), "enabled": False},
    })
    result = invoke("validate", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok: {config} (2 enabled destinations: hook, alerts)"
    assert result.stderr == ""
    # validate only reads: no outbox appears.
    assert not (tmp_path / "outbox.db").exists()


def test_validate_reads_crossdock_config_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, {"hook": hook()})
    monkeypatch.setenv("CROSSDOCK_CONFIG", str(config))
    result = invoke("validate")
    assert result.exit_code == 0, result.output
    assert f"ok: {config}" in result.stdout


def test_validate_a_missing_file_exits_1_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = invoke("validate", "-c", str(missing))
    assert result.exit_code == 1
    assert f"{missing}: cannot read (No such file or directory)" in result.stderr


class _WarnySettings(BaseModel):
    level: int = 1


class _WarnyDestination(Destination):
    """A destination type that always has something to say about its config."""

    plugin_name: ClassVar[str] = "warny"
    settings_model = _WarnySettings
    description: ClassVar[str] = "test type with warnings"

    def config_warnings(self, context: DestinationContext) -> list[str]:
        return [f"level {self.settings.level} is very loud in {context.name}"]

    def build_requests(self, items: Any) -> list[PlannedRequest | Rejected]:
        return []


class _TestPlugin:
    """A plugin registered the way an entry point is: an object with hookimpls."""

    @hookimpl
    def register_destinations(self, register: Any) -> None:
        register(_WarnyDestination)

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command("hello")
        @click.argument("name")
        def hello(name: str) -> None:
            """Say hello (added by a test plugin)."""
            click.echo(f"hello {name} from a plugin")


@pytest.fixture
def test_plugin() -> Iterator[None]:
    pm = plugin_manager()
    pm.register(_TestPlugin(), name="test-plugin")
    try:
        yield
    finally:
        pm.unregister(name="test-plugin")
        cli.commands.pop("hello", None)


def test_validate_prints_plugin_warnings_and_still_exits_0(
    tmp_path: Path, test_plugin: None
) -> None:
    config = write_config(tmp_path, {"loud": {"plugin": "warny", "settings": {"level": 11}},
                                     "hook": hook()})
    result = invoke("validate", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "warning: destinations.loud: level 11 is very loud in loud" in result.stderr
    assert "(2 enabled destinations: loud, hook)" in result.stdout


# -- plugins ----------------------------------------------------------------------------------


def test_plugins_lists_webhook_and_slack_with_their_settings() -> None:
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "webhook  POST routed messages as signed JSON to any URL" in out
    assert "slack  Post a message to a Slack channel (incoming webhook)" in out
    assert "    url: string (uri) (required) the receiver's http(s) URL" in out
    assert "    webhook_url: string (password) (required)" in out
    assert "    secret: string (password) | null (optional)" in out


def test_plugins_json() -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"webhook", "slack"} <= set(data["plugins"])
    by_name = {d["plugin"]: d for d in data["destinations"]}
    webhook, slack = by_name["webhook"], by_name["slack"]
    assert webhook["module"] == "crossdock.plugins.webhook.destination"
    assert webhook["max_batch_size"] == 100 and slack["max_batch_size"] == 1
    assert webhook["settings"]["url"] == {
        "type": "string (uri)", "required": True, "description": "the receiver's http(s) URL"}
    assert webhook["settings"]["secret"]["required"] is False
    assert slack["settings"]["webhook_url"]["required"] is True
    assert slack["settings"]["webhook_url"]["type"] == "string (password)"


def _plugins_json_with(env_value: str) -> dict[str, Any]:
    """`crossdock plugins --json` in a fresh process with CROSSDOCK_LOAD_PLUGINS set (the
    plugin manager is process-wide, so the limit is read once per process)."""
    env = {**os.environ, "CROSSDOCK_LOAD_PLUGINS": env_value}
    done = subprocess.run([sys.executable, "-m", "crossdock.cli", "plugins", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_crossdock_load_plugins_limits_what_loads() -> None:
    only_webhook = _plugins_json_with("webhook")
    assert only_webhook["plugins"] == ["webhook"]
    assert [d["plugin"] for d in only_webhook["destinations"]] == ["webhook"]
    both = _plugins_json_with(" slack , webhook ")
    assert sorted(both["plugins"]) == ["slack", "webhook"]
    assert _plugins_json_with("") == {"plugins": [], "destinations": []}


def test_a_config_naming_a_plugin_that_is_not_loaded_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, {
        "alerts": {"plugin": "slack", "settings": {"webhook_url": SLACK_URL}}})
    env = {**os.environ, "CROSSDOCK_LOAD_PLUGINS": "webhook"}
    done = subprocess.run([sys.executable, "-m", "crossdock.cli", "validate", "-c", str(config)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert "destinations.alerts.plugin: unknown plugin 'slack' (known: webhook)" in done.stderr


# -- register_commands --------------------------------------------------------------------------


def test_register_commands_hook_adds_a_command(test_plugin: None) -> None:
    assert "hello" not in cli.commands
    root_cli._attach_plugin_commands()
    result = invoke("hello", "world")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello world from a plugin\n"
    assert "Say hello (added by a test plugin)." in invoke("--help").stdout


# -- status, dead letters ---------------------------------------------------------------------


AGO = 3725


@pytest.fixture
def busy_outbox(tmp_path: Path) -> Path:
    """A config whose outbox holds one row in each state for `hook`, accepted 1h 02m 05s
    ago; `idle` has none."""
    config = write_config(tmp_path, {"hook": hook(), "idle": hook()})
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        now = time.time() - AGO
        box.enqueue([NewRow("hook", f"m{i}", payload(f"m{i}")) for i in range(1, 6)], now=now)
        first = box.lease("hook", 3, 60, "test", now=now)
        assert [i.message_id for i in first] == ["m1", "m2", "m3"]
        box.ack([first[0].id], "test", now=now)
        box.retry(first[1].id, now + 3600, "HTTP 503: busy", "test")
        box.dead(first[2].id, "HTTP 400: email is not valid", "test", now=now)
        assert [i.message_id for i in box.lease("hook", 1, 60, "test", now=now)] == ["m4"]
    finally:
        box.close()
    return config


def test_status_json(busy_outbox: Path) -> None:
    result = invoke("status", "-c", str(busy_outbox), "--json")
    assert result.exit_code == 0, result.output
    idle = {"queued": 0, "leased": 0, "retrying": 0, "delivered": 0, "dead": 0,
            "last_error": None, "dropped_attributes": 0, "oldest_waiting_at": None,
            "last_error_at": None, "circuit": "closed", "circuit_failures": 0,
            "circuit_opened_at": None, "circuit_next_probe_at": None, "paused_by": None,
            "paused_at": None}
    # `idle` has no row at all: it is listed with zeros, as the table lists it.
    assert json.loads(result.stdout) == {"hook": {
        "queued": 2, "leased": 1, "retrying": 1, "delivered": 1, "dead": 1,
        "last_error": "HTTP 400: email is not valid", "dropped_attributes": 0,
        "oldest_waiting_at": pytest.approx(time.time() - AGO, abs=60),
        "last_error_at": pytest.approx(time.time() - AGO, abs=60),
        "circuit": "closed", "circuit_failures": 0, "circuit_opened_at": None,
        "circuit_next_probe_at": None, "paused_by": None, "paused_at": None,
    }, "idle": idle}


def test_status_shows_an_open_circuit_and_when_it_is_probed_next(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hook": hook()})
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        now = time.time()
        closed = box.circuit("hook")
        assert box.swap_circuit(closed, replace(
            closed, state="open", failures=5, opened_at=now - AGO, next_probe_at=now + 2 * AGO,
            last_error="connection error sending POST http://127.0.0.1:9/…: refused"))
    finally:
        box.close()
    result = invoke("status", "-c", str(config))
    assert result.exit_code == 0, result.output
    rows = {cells[0]: cells[1:] for line in result.stdout.splitlines()
            if len(cells := [c.strip() for c in line.split("│")[1:-1]]) == 10}
    assert rows["hook"][7] == "open 1h 02m, probe in 2h 04m"
    as_json = json.loads(invoke("status", "-c", str(config), "--json").stdout)["hook"]
    assert (as_json["circuit"], as_json["circuit_failures"]) == ("open", 5)


def test_status_shows_who_paused_a_destination(busy_outbox: Path) -> None:
    box = SQLiteOutbox(busy_outbox.parent / "outbox.db")
    try:
        assert box.pause("hook", "ada", now=time.time() - AGO)
    finally:
        box.close()
    result = invoke("status", "-c", str(busy_outbox))
    rows = {cells[0]: cells[1:] for line in result.stdout.splitlines()
            if len(cells := [c.strip() for c in line.split("│")[1:-1]]) == 10}
    assert rows["hook"][7] == "paused by ada 1h 02m ago"
    as_json = json.loads(invoke("status", "-c", str(busy_outbox), "--json").stdout)["hook"]
    assert as_json["paused_by"] == "ada"


def test_status_table(busy_outbox: Path) -> None:
    result = invoke("status", "-c", str(busy_outbox))
    assert result.exit_code == 0, result.output
    rows = {cells[0]: cells[1:] for line in result.stdout.splitlines()
            if len(cells := [c.strip() for c in line.split("│")[1:-1]]) == 10}
    assert rows["hook"] == ["2", "1", "1", "1", "1", "0", "1h 02m", "closed",
                            "1h 02m ago: HTTP 400: email is not valid"]
    assert rows["idle"] == ["0", "0", "0", "0", "0", "0", "", "closed", ""]  # nothing yet
    assert "oldest waiting" in result.stdout
    assert "queued" in result.stdout and "last error" in result.stdout


def piped(*args: str) -> str:
    """A command's stdout in a fresh process writing to a pipe with no COLUMNS, as when an
    operator pipes it to grep or a log (the in-process tests widen the consoles)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "crossdock.cli", *args],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_piped_output_is_not_cut_to_80_columns(tmp_path: Path) -> None:
    # Rich assumed 80 columns off a terminal: "destina…", "warehou…", settings' descriptions
    # wrapped mid-sentence.
    config = write_config(tmp_path, {"warehouse-events-eu": hook()})
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        box.enqueue([NewRow("warehouse-events-eu", "m1", payload("m1"))], now=time.time())
        (item,) = box.lease("warehouse-events-eu", 1, 60, "test", now=time.time())
        box.retry(item.id, time.time() + 60,
                  "connection error sending POST http://x/…: refused", "test")
    finally:
        box.close()
    status = piped("status", "-c", str(config))
    assert "warehouse-events-eu" in status and "destination" in status
    assert "connection error sending POST http://x/…: refused" in status
    plugins = piped("plugins")
    assert ("    access_token: string (password) (required) a token with ads_management "
            "(keep it in ${ENV})\n") in plugins
    assert '    method: POST | PUT (optional, default "POST") the HTTP method\n' in plugins


def test_dead_letters_list_and_replay(busy_outbox: Path) -> None:
    listed = invoke("dead-letters", "list", "-c", str(busy_outbox), "--json")
    assert listed.exit_code == 0, listed.output
    [letter] = json.loads(listed.stdout)
    assert (letter["destination"], letter["message_id"], letter["attempts"]) == ("hook", "m3", 1)
    assert letter["reason"] == "HTTP 400: email is not valid"
    assert letter["payload"] == payload("m3")

    table = invoke("dead-letters", "list", "-c", str(busy_outbox))
    assert "m3" in table.stdout and "HTTP 400: email is not valid" in table.stdout
    assert invoke("dead-letters", "list", "-c", str(busy_outbox), "-d", "idle",
                  "--json").stdout.strip() == "[]"

    # Another destination's replay queues nothing; an unknown id is an error naming it.
    assert "replayed 0 dead letters" in invoke(
        "dead-letters", "replay", "-c", str(busy_outbox), "-d", "idle").stdout
    unknown = invoke("dead-letters", "replay", "-c", str(busy_outbox), str(letter["id"] + 1000))
    assert unknown.exit_code == 1
    assert f"no dead letter with id {letter['id'] + 1000}" in unknown.output
    # A destination neither configured nor in the outbox is a typo, not "nothing to do".
    for command in ("list", "replay"):
        typo = invoke("dead-letters", command, "-c", str(busy_outbox), "-d", "hok")
        assert typo.exit_code == 2, typo.output
        assert "no destination 'hok' in the config or its outbox (known: hook, idle)" in (
            typo.output)
    replayed = invoke("dead-letters", "replay", "-c", str(busy_outbox), str(letter["id"]))
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 1 dead letters" in replayed.stdout

    box = SQLiteOutbox(busy_outbox.parent / "outbox.db")
    try:
        row = box.row("hook", "m3")
        assert row is not None
        assert (row["state"], row["attempts"]) == ("queued", 0)
        assert row["next_attempt_at"] <= time.time()
    finally:
        box.close()
    status = json.loads(invoke("status", "-c", str(busy_outbox), "--json").stdout)["hook"]
    assert (status["queued"], status["dead"]) == (3, 0)
    assert json.loads(invoke("dead-letters", "list", "-c", str(busy_outbox),
                             "--json").stdout) == []


# -- deliver --once ----------------------------------------------------------------------------


@pytest.fixture
def webhook_fake() -> Iterator[tuple[WebhookFake, RunningServer]]:
    fake = WebhookFake()
    with serve(webhook_app(fake)) as server:
        yield fake, server


def test_deliver_once_drains_what_is_due(
    tmp_path: Path, webhook_fake: tuple[WebhookFake, RunningServer]
) -> None:
    fake, server = webhook_fake
    config = write_config(tmp_path, {"hook": hook(f"{server.url}/in")})
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        now = time.time()
        box.enqueue([NewRow("hook", "later", payload("later"))], now=now)
        [later] = box.lease("hook", 1, 60, "test", now=now)
        box.retry(later.id, now + 3600, "HTTP 503: busy", "test")
        box.enqueue([NewRow("hook", "due-1", payload("due-1")),
                     NewRow("hook", "due-2", payload("due-2"))], now=now)
    finally:
        box.close()
    fake.script([{"status": 400, "body": "no thanks"}])

    result = invoke("deliver", "--once", "-c", str(config))
    # A message went dead: cron must be able to tell (it ran 0 with messages gone dead).
    assert result.exit_code == deliver_cli.EXIT_DEAD, result.output
    assert result.stdout.splitlines() == [
        "delivered 1, retry later 0, dead 1 (2 requests)",
        "  hook: delivered 1, retry later 0, dead 1 (2 requests); last error: HTTP 400: no "
        "thanks",
    ]
    [received] = server.call(lambda: list(fake.received))
    body = {k: v for k, v in payload(received["body"]["messageId"]).items() if k != "rendered"}
    assert received["body"] == body
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        states = {m: (box.row("hook", m) or {})["state"] for m in ("due-1", "due-2", "later")}
    finally:
        box.close()
    # The scripted 400 answered whichever due row went first; the other was delivered.
    assert states[received["body"]["messageId"]] == "delivered"
    assert sorted([states["due-1"], states["due-2"]]) == ["dead", "delivered"]
    assert states["later"] == "queued"  # not due yet: left alone
    again = invoke("deliver", "--once", "-c", str(config))
    assert again.stdout.startswith("delivered 0, retry later 0, dead 0 (0 requests)")
    assert again.exit_code == 0


def enqueue(tmp_path: Path, destination: str, count: int) -> None:
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        box.enqueue([NewRow(destination, f"{destination}-{n}", payload(f"{destination}-{n}"))
                     for n in range(count)], now=time.time())
    finally:
        box.close()


def queued(tmp_path: Path) -> dict[str, tuple[int, int]]:
    """(queued, delivered) per destination."""
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        return {name: (c.queued, c.delivered) for name, c in box.counts().items()}
    finally:
        box.close()


def test_deliver_once_stops_at_its_limit_and_says_so_in_json(
    tmp_path: Path, webhook_fake: tuple[WebhookFake, RunningServer]
) -> None:
    _, server = webhook_fake
    config = write_config(tmp_path, {"hook": hook(f"{server.url}/in")})
    enqueue(tmp_path, "hook", 5)
    result = invoke("deliver", "--once", "-c", str(config), "--limit", "2", "--json",
                    "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("delivered", "retried", "dead", "requests", "stopped_by",
                                    "still_queued")} == {
        "delivered": 2, "retried": 0, "dead": 0, "requests": 2, "stopped_by": "limit",
        "still_queued": 3}
    assert summary["destinations"]["hook"]["delivered"] == 2
    assert queued(tmp_path)["hook"] == (3, 2)
    text = invoke("deliver", "--once", "-c", str(config), "--limit", "1", "--quiet")
    assert "stopped by --limit after" in text.stdout and "; 2 still queued" in text.stdout


def test_deliver_once_ends_at_max_time_with_progress_on_stderr(
    tmp_path: Path, webhook_fake: tuple[WebhookFake, RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Slack-like: 2 requests a second and a big batch leased at once. Unbounded, 40 rows
    # take 20 s; the run must end near its --max-time, the unsent rows back in the queue
    # unattempted, and say how far it got while it runs.
    _, server = webhook_fake
    monkeypatch.setattr(deliver_cli, "PROGRESS_EVERY", 0.2)
    config = write_config(tmp_path, {"hook": hook(
        f"{server.url}/in", delivery={"allow_private_network": True, "rate_limit": 2,
                                      "batch_size": 40, "concurrency": 1})})
    enqueue(tmp_path, "hook", 40)
    started = time.monotonic()
    result = invoke("deliver", "--once", "-c", str(config), "--max-time", "1")
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert took < 5, took
    first = result.stdout.splitlines()[0]
    delivered = int(first.split(",")[0].removeprefix("delivered "))
    assert 1 <= delivered <= 4, result.stdout
    assert "stopped by --max-time after" in result.stdout
    assert f"; {40 - delivered} still queued" in result.stdout
    assert queued(tmp_path)["hook"] == (40 - delivered, delivered)
    progress = [line for line in result.stderr.splitlines() if line.startswith("deliver: ")]
    assert progress and "of 40 queued settled" in progress[0], result.stderr
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        attempted = [box.row("hook", f"hook-{n}") for n in range(40)]
    finally:
        box.close()
    # Released, not retried: the next run sends them at once, nothing counted against them.
    assert sum(1 for row in attempted if row and row["attempts"]) == delivered


def test_deliver_once_to_named_destinations_only(
    tmp_path: Path, webhook_fake: tuple[WebhookFake, RunningServer]
) -> None:
    _, server = webhook_fake
    config = write_config(tmp_path, {"one": hook(f"{server.url}/in"),
                                     "two": hook(f"{server.url}/in")})
    enqueue(tmp_path, "one", 2)
    enqueue(tmp_path, "two", 2)
    result = invoke("deliver", "--once", "-c", str(config), "-d", "two", "--quiet")
    assert result.exit_code == 0, result.output
    assert queued(tmp_path) == {"one": (2, 0), "two": (0, 2)}
    wrong = CliRunner().invoke(cli, ["deliver", "--once", "-c", str(config), "-d", "tow"])
    assert wrong.exit_code == 2
    assert "no enabled destination 'tow' (enabled: one, two)" in wrong.output


# -- send ---------------------------------------------------------------------------------------


DEEP = '{"a": ' * 5_000 + "1" + "}" * 5_000


@pytest.mark.parametrize(("bad", "problems"), [
    (["not json"], ["not valid JSON (Expecting value at column 1)"]),
    # A line nested ~1,000 deep printed a traceback and stored none of the good lines; 1e400
    # was stored as null.
    (['{"type": "track", "userId": "u-1", "event": "A", "properties": {"d": ' + DEEP + "}}",
      '{"type": "track", "userId": "u-1", "event": "A", "properties": {"total": 1e400}}',
      '{"type": "identify", "userId": "u-1", "traits": {"ltv": NaN}}'],
     [f"properties.d.a.a.a.a.…{MAX_DEPTH - 8} more….a.a: {DEPTH_RULE}",
      f"properties.total: {FINITE_RULE}, got inf", f"traits.ltv: {FINITE_RULE}, got nan"]),
])
def test_send_from_stdin_reports_bad_lines_and_keeps_the_good(
    tmp_path: Path, bad: list[str], problems: list[str],
) -> None:
    config = write_config(tmp_path, {"hook": hook()})
    lines = "\n".join([
        json.dumps({"type": "track", "messageId": "s1", "userId": "u-1", "event": "A"}),
        *bad,
        json.dumps({"type": "page", "messageId": "s3", "anonymousId": "a-1"}),
    ]) + "\n"
    result = invoke("send", "-c", str(config), "--quiet", "-", input=lines)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"line {number}: {problem}" for number, problem in enumerate(problems, start=2)]
    assert (f"accepted 2 messages (2 outbox rows), 0 duplicates, {len(bad)} bad lines"
            in result.stdout)
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        assert box.counts()["hook"].queued == 2
    finally:
        box.close()


def test_send_names_bad_lines_by_number_past_the_first_transaction(tmp_path: Path) -> None:
    # The pipeline commits 500 messages at a time and reports a bad one by its index in the
    # stream; blank lines and lines that are not JSON never reach it, yet count as lines.
    config = write_config(tmp_path, {"hook": hook()})
    lines = [json.dumps({"type": "track", "messageId": f"m{n}", "userId": "u-1", "event": "A"})
             for n in range(1, 1_301)]
    lines[9] = ""
    lines[2] = lines[776] = "{not json"
    lines[1000] = json.dumps({"type": "track", "messageId": "m1001", "userId": "u-1"})
    result = invoke("send", "-c", str(config), "--quiet", "-", input="\n".join(lines) + "\n")
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == [
        "line 3", "line 777", "line 1001"]
    assert ("accepted 1296 messages (1296 outbox rows), 0 duplicates, 3 bad lines"
            in result.stdout)


# -- an outbox that cannot be opened --------------------------------------------------------------

#: a PostgreSQL outbox on a port nothing listens on, with a password in two places
DOWN_SECRET = "hunter2-outbox"
DOWN_URL = (f"postgresql://crossdock:{DOWN_SECRET}@127.0.0.1:9/crossdock"
            f"?password={DOWN_SECRET}&sslpassword={DOWN_SECRET}")


@pytest.mark.parametrize("command", [
    ["status"], ["run"], ["deliver", "--once"], ["dead-letters", "list"],
    ["dead-letters", "replay"], ["send", "-"], ["profiles", "show", "u-1"],
    ["audiences", "list"], ["db", "upgrade"],
])
def test_an_unreachable_outbox_is_one_line_and_exit_1(tmp_path: Path, command: list[str]) -> None:
    # Every command opening the outbox printed a traceback, and the password with it.
    config = tmp_path / "crossdock.yaml"
    config.write_text(yaml.safe_dump({"outbox": {"url": DOWN_URL},
                                      "collector": {"enabled": False}}))
    done = subprocess.run([sys.executable, "-m", "crossdock.cli", *command, "-c", str(config)],
                          capture_output=True, text=True, timeout=60,
                          input='{"type": "track", "userId": "u-1", "event": "A"}\n')
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: postgresql://crossdock:***@127.0.0.1:9/crossdock?password=***"
                           "&sslpassword=***: cannot connect to PostgreSQL")
    assert DOWN_SECRET not in done.stdout + done.stderr


# -- read-only commands without the destinations' secrets ---------------------------------------


def test_read_only_commands_need_no_destination_secret(tmp_path: Path) -> None:
    # status, dead-letters list and profiles show send nothing, yet refused to run ("environment
    # variable SLACK_WEBHOOK_URL is not set") where the daemon's secrets are not kept.
    config = write_config(tmp_path, {
        "slack-orders": {"plugin": "slack", "settings": {"webhook_url": "${SLACK_WEBHOOK_URL}"}},
        "hook": hook(),
    })
    runner = CliRunner()
    line = json.dumps({"type": "track", "messageId": "ro-1", "userId": "u-ro",
                       "event": "Order Completed", "properties": {"total": 3}})
    sent = runner.invoke(cli, ["send", "-c", str(config), "--quiet", "-"], input=line + "\n",
                         env={"SLACK_WEBHOOK_URL": SLACK_URL})
    assert sent.exit_code == 0, sent.output
    unset = {"SLACK_WEBHOOK_URL": None}
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        [row] = box.lease("slack-orders", 1, 60, "test", now=time.time())
        box.dead(row.id, "HTTP 404: no_service", "test")
    finally:
        box.close()

    status = runner.invoke(cli, ["status", "-c", str(config), "--json"], env=unset)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["slack-orders"]["dead"] == 1
    assert ("destinations.slack-orders: left out: settings.webhook_url: environment variable "
            "SLACK_WEBHOOK_URL is not set" in " ".join(status.stderr.split()))
    table = runner.invoke(cli, ["status", "-c", str(config)], env=unset)
    assert table.exit_code == 0 and "slack-orders" in table.stdout

    letters = runner.invoke(cli, ["dead-letters", "list", "-c", str(config), "--json",
                                  "-d", "slack-orders"], env=unset)
    assert letters.exit_code == 0, letters.output
    assert [d["reason"] for d in json.loads(letters.stdout)] == ["HTTP 404: no_service"]

    profile = runner.invoke(cli, ["profiles", "show", "-c", str(config), "u-ro", "--json"],
                            env=unset)
    assert profile.exit_code == 0, profile.output
    assert json.loads(profile.stdout)["userId"] == "u-ro"

    # What sends still needs the secret, and says which.
    for command in (["deliver", "--once"], ["validate"]):
        refused = runner.invoke(cli, [*command, "-c", str(config)], env=unset)
        assert refused.exit_code == 1
        assert "destinations.slack-orders.settings.webhook_url: environment variable " \
               "SLACK_WEBHOOK_URL is not set" in refused.stderr
