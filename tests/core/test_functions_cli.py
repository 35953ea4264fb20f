"""`crossdock functions test FILE MESSAGE.json`: one message through a function, locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crossdock.cli import cli

FUNCTION = """
function transformEvent(event, metadata) {
  console.log('checking', event.messageId, metadata);
  if (event.event === 'Test Event') return null;
  if (event.event === 'Broken') throw new TypeError('no price on ' + event.messageId);
  if (event.event === 'Twice') return [event, {...event, event: 'Again'}];
  event.event = slug(event.event);
  return event;
}
"""


def run(tmp_path: Path, message: dict[str, object], *args: str) -> Result:
    (tmp_path / "fn.js").write_text(FUNCTION)
    (tmp_path / "slug.js").write_text(
        "function slug(text) { return text.toLowerCase().replace(/ /g, '_'); }")
    (tmp_path / "message.json").write_text(json.dumps(message))
    return CliRunner().invoke(cli, ["functions", "test", str(tmp_path / "fn.js"),
                                    str(tmp_path / "message.json"), *args])


def track(name: str) -> dict[str, object]:
    return {"type": "track", "messageId": "m1", "event": name, "properties": {}}


def test_prints_the_changed_event_and_the_console(tmp_path: Path) -> None:
    result = run(tmp_path, track("Order Completed"), "-l", str(tmp_path / "slug.js"),
                 "--metadata", '{"destination": "crm"}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["event"] == "order_completed"
    assert 'console: checking m1 {"destination":"crm"}' in result.stderr


def test_a_list_and_a_drop(tmp_path: Path) -> None:
    result = run(tmp_path, track("Twice"))
    assert result.exit_code == 0, result.output
    assert [e["messageId"] for e in json.loads(result.stdout)] == ["m1", "m1:1"]
    result = run(tmp_path, track("Test Event"))
    assert (result.exit_code, result.stdout) == (0, "")
    assert "dropped: the function returned null" in result.stderr


@pytest.mark.parametrize(("name", "args", "error"), [
    ("Broken", (), "dead letter: transformEvent failed: "),
    ("Order Completed", (), "ReferenceError: slug is not defined"),
])
def test_a_failure_says_what_the_daemon_would_dead_letter(
    tmp_path: Path, name: str, args: tuple[str, ...], error: str,
) -> None:
    result = run(tmp_path, track(name), *args)
    assert result.exit_code == 1
    assert error in result.stderr


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "lib.js").write_text("function oops( {")
    result = run(tmp_path, track("x"), "-l", str(tmp_path / "lib.js"))
    assert result.exit_code == 1
    assert f"{tmp_path / 'lib.js'}:3: SyntaxError: Unexpected end of input" in result.stderr


DESTINATION_FUNCTION = """
function onEvent(event, settings, metadata) {
  if (event.event === 'Test Event') return null;
  if (event.event === 'Broken') return 'https://example.com';
  return [{url: settings.endpoint + '/events', body: {name: event.event}},
          {method: 'PUT', url: settings.endpoint + '/seen/' + metadata.messageId}];
}
"""


def test_a_destination_functions_requests(tmp_path: Path) -> None:
    (tmp_path / "dest.js").write_text(DESTINATION_FUNCTION)
    (tmp_path / "message.json").write_text(json.dumps(track("Order Completed")))

    def invoke(name: str) -> Result:
        (tmp_path / "message.json").write_text(json.dumps(track(name)))
        return CliRunner().invoke(cli, [
            "functions", "test", str(tmp_path / "dest.js"), str(tmp_path / "message.json"),
            "--entry", "onEvent", "--settings", '{"endpoint": "https://crm.example.com"}',
            "--metadata", '{"messageId": "m1"}'])

    result = invoke("Order Completed")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"url": "https://crm.example.com/events", "body": {"name": "Order Completed"}},
        {"method": "PUT", "url": "https://crm.example.com/seen/m1"}]
    dropped = invoke("Test Event")
    assert (dropped.exit_code, dropped.stdout) == (0, "")
    assert "nothing to send: the function returned null" in dropped.stderr
    broken = invoke("Broken")
    assert broken.exit_code == 1
    assert ("dead letter: onEvent returned: a string, not a request (an object)"
            in broken.stderr)
