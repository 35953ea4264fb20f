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

SEND_CHUNK = 500


def _read_lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


@click.command()
@common.config_option
@click.argument("file", type=click.File("r"))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def send(config_path: str, file: IO[str], quiet: bool) -> None:
    """Put the messages of FILE (JSON lines, - for stdin) into the outbox.

    Bad lines are reported by line number; the good lines are kept. Exit 1 if any line was bad.
    """
    from crossdock.pipeline import build_pipeline

    loaded = common.load_or_exit(config_path)
    pipeline = build_pipeline(loaded)
    bad: list[tuple[int, list[str]]] = []
    accepted = duplicates = rows = 0
    total = None
    if file is not sys.stdin and file.name not in ("<stdin>", "-"):
        with open(file.name, "rb") as counter:
            total = sum(1 for line in counter if line.strip())
    progress = Progress(TextColumn("sending"), BarColumn(), TextColumn("{task.completed}"),
                        TimeRemainingColumn(), console=common.err_console, disable=quiet)
    try:
        with progress:
            task = progress.add_task("send", total=total)
            chunk: list[tuple[int, str]] = []
            for item in _read_lines(file):
                chunk.append(item)
                if len(chunk) >= SEND_CHUNK:
                    a, d, r = _send_chunk(pipeline, chunk, bad)
                    accepted, duplicates, rows = accepted + a, duplicates + d, rows + r
                    progress.advance(task, len(chunk))
                    chunk = []
            if chunk:
                a, d, r = _send_chunk(pipeline, chunk, bad)
                accepted, duplicates, rows = accepted + a, duplicates + d, rows + r
                progress.advance(task, len(chunk))
    finally:
        pipeline.close()
    for number, problems in bad:
        common.err_console.print(f"line {number}: " + "; ".join(problems), markup=False,
                                 highlight=False, soft_wrap=True)
    common.console.print(f"accepted {accepted} messages ({rows} outbox rows), {duplicates} "
                         f"duplicates, {len(bad)} bad lines", highlight=False)
    if bad:
        raise SystemExit(1)


def _send_chunk(pipeline: Any, chunk: list[tuple[int, str]],
                bad: list[tuple[int, list[str]]]) -> tuple[int, int, int]:
    raws: list[Any] = []
    numbers: list[int] = []
    for number, line in chunk:
        try:
            # Without its newline, or an unclosed line's error lands on a "line 2, column 1".
            raws.append(loads(line.rstrip("\r\n")))
            numbers.append(number)
        except json.JSONDecodeError as exc:
            bad.append((number, [f"not valid JSON ({exc.msg} at column {exc.colno})"]))
    result = pipeline.accept(raws)
    for index, problems in result.errors:
        bad.append((numbers[index], problems))
    bad.sort()
    return len(result.accepted), len(result.duplicates), result.rows
