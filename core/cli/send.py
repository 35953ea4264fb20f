"""`crossdock send FILE`: JSON lines into the outbox through the pipeline."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import IO, Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from crossdock.cli import common
from crossdock.json_shape import loads


def _parsed(stream: IO[str], numbers: list[int],
            bad: list[tuple[int, list[str]]]) -> Iterator[Any]:
    """The JSON value of each non-blank line; a line that is not JSON goes to `bad` by its
    number, and `numbers[i]` is the line of the i-th value given out (the pipeline reports
    errors by that index)."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            # Without its newline, or an unclosed line's error lands on a "line 2, column 1".
            value = loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            bad.append((number, [f"not valid JSON ({exc.msg} at column {exc.colno})"]))
            continue
        numbers.append(number)
        yield value


@click.command()
@common.config_option
@click.argument("file", type=click.File("r"))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def send(config_path: str, file: IO[str], quiet: bool) -> None:
    """Put the messages of FILE (JSON lines, - for stdin) into the outbox.

    Bad lines are reported by line number; the good lines are kept. Exit 1 if any line was bad.
    """
    from crossdock.pipeline import AcceptResult, build_pipeline

    loaded = common.load_or_exit(config_path)
    pipeline = build_pipeline(loaded)
    bad: list[tuple[int, list[str]]] = []
    numbers: list[int] = []
    total = None
    if file is not sys.stdin and file.name not in ("<stdin>", "-"):
        with open(file.name, "rb") as counter:
            total = sum(1 for line in counter if line.strip())
    progress = Progress(TextColumn("sending"), BarColumn(), TextColumn("{task.completed}"),
                        TimeRemainingColumn(), console=common.err_console, disable=quiet)

    def committed(done: int, chunk: AcceptResult) -> None:
        # Lines read so far, the bad ones included (the total counts them too).
        progress.update(task, completed=len(numbers) + len(bad))

    try:
        with progress:
            task = progress.add_task("send", total=total)
            result = pipeline.accept_iter(_parsed(file, numbers, bad), progress=committed)
            progress.update(task, completed=len(numbers) + len(bad))
    finally:
        pipeline.close()
    bad += [(numbers[index], problems) for index, problems in result.errors]
    for number, problems in sorted(bad):
        common.err_console.print(f"line {number}: " + "; ".join(problems), markup=False,
                                 highlight=False, soft_wrap=True)
    common.console.print(f"accepted {len(result.accepted)} messages ({result.rows} outbox "
                         f"rows), {len(result.duplicates)} duplicates, {len(bad)} bad lines",
                         highlight=False)
    if bad:
        raise SystemExit(1)
