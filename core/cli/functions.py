"""`crossdock functions test FILE MESSAGE.json`: one message through a transformEvent, on this
machine, in the same isolate and limits the daemon uses (crossdock.functions.runtime)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import click

from crossdock.cli import common
from crossdock.functions.config import DESTINATION_ENTRY, TRANSFORM_ENTRY
from crossdock.functions.events import REQUESTS_HINT, interpret, interpret_values
from crossdock.functions.runtime import (
    FunctionCode,
    FunctionLoadError,
    FunctionRunner,
    Limits,
)


@click.group("functions")
def functions_group() -> None:
    """Operator JavaScript functions (docs/functions.md)."""


@functions_group.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("message", type=click.File("r"))
@click.option("-l", "--library", "libraries", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A library file evaluated before FILE (repeat, in order).")
@click.option("--metadata", default="{}", show_default=True,
              help="The metadata argument, as JSON.")
@click.option("--entry", type=click.Choice([TRANSFORM_ENTRY, DESTINATION_ENTRY]),
              default=TRANSFORM_ENTRY, show_default=True,
              help=f"The function to run: a transform's {TRANSFORM_ENTRY}, or a function "
                   f"destination's {DESTINATION_ENTRY}.")
@click.option("--settings", "settings", default="{}", show_default=True,
              help=f"{DESTINATION_ENTRY}'s settings argument, as JSON.")
@click.option("--timeout", default=1.0, show_default=True, type=float,
              help="Seconds the call may take.")
@click.option("--memory-mb", default=64, show_default=True, type=int,
              help="The isolate's V8 heap limit.")
def test_command(file: Path, message: IO[str], libraries: tuple[Path, ...], metadata: str,
                 entry: str, settings: str, timeout: float, memory_mb: int) -> None:
    """Run FILE's transformEvent (or a function destination's onEvent, --entry) on MESSAGE
    (a JSON file, - for stdin: the routed event the daemon would pass, e.g. from `crossdock
    route --json`). Prints the events (or requests) it returns as JSON; console.log lines go
    to stderr. Exit 1 when the function fails: the daemon would dead-letter that message."""
    event = _json(message.read(), message.name)
    meta = _json(metadata, "--metadata")
    runner = FunctionRunner(Limits(timeout, memory_mb))
    args: list[Any] = [event, meta]
    if entry == DESTINATION_ENTRY:
        args = [event, _json(settings, "--settings"), meta]
    try:
        code = FunctionCode(str(file), file.read_text(),
                            tuple((str(path), path.read_text()) for path in libraries))
        try:
            function = runner.load(code, (entry,))
        except FunctionLoadError as exc:
            raise click.ClickException(str(exc)) from exc
        [result] = function.call(entry, [args])
    finally:
        runner.close()
    if entry == DESTINATION_ENTRY:
        answer = interpret_values(result, entry, "a request", REQUESTS_HINT)
        what = "nothing to send: the function returned null (the row is acknowledged)"
    else:
        message_id = event.get("messageId") if isinstance(event, dict) else None
        answer = interpret(result, str(message_id or ""), TRANSFORM_ENTRY)
        what = "dropped: the function returned null (nothing is sent; the row is acknowledged)"
    err = common.err_console
    for line in answer.logs:
        err.print(f"console: {line}", markup=False, highlight=False)
    if answer.error is not None:
        err.print(f"dead letter: {answer.error}", markup=False, highlight=False)
        raise SystemExit(1)
    if answer.dropped:
        err.print(what, markup=False, highlight=False)
        return
    shown: Any = answer.events if len(answer.events) > 1 else answer.events[0]
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} "
                                   f"column {exc.colno})") from exc
