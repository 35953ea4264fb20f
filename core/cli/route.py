"""`crossdock route -d DEST MESSAGE.json` (or `--all`): what a message would become for
destinations, without sending or storing anything (crossdock.route.preview)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import IO, Any

import click

from crossdock.cli import common
from crossdock.errors import MessageError
from crossdock.route.preview import PlannedView, RoutePreview, preview_route


@click.command("route")
@common.config_option
@click.option("-d", "--destination", "names", multiple=True,
              help="A destination to preview (repeat for more).")
@click.option("--all", "every", is_flag=True, help="Every enabled destination.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("message", type=click.File("r"))
def route_command(config_path: str, names: tuple[str, ...], every: bool, as_json: bool,
                  message: IO[str]) -> None:
    """Show what MESSAGE (a JSON file, - for stdin) would become for destinations: the
    filter's decision, the routed payload and the planned requests, secrets redacted.
    Nothing is sent or stored."""
    if bool(names) == every:
        raise click.UsageError("name destinations with -d, or give --all")
    loaded = common.load_or_exit(config_path)
    known = [d.name for d in loaded.destinations]
    for name in names:
        if name not in known:
            raise click.BadParameter(
                f"no enabled destination {name!r} (known: {', '.join(known) or 'none'})",
                param_hint="-d/--destination")
    try:
        raw = json.load(message)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{message.name}: not valid JSON ({exc.msg} at line "
                                   f"{exc.lineno} column {exc.colno})") from exc
    try:
        previews = preview_route(loaded, raw, None if every else list(names))
    except MessageError as exc:
        for problem in exc.problems:
            common.err_console.print(f"message: {problem}", markup=False,
                                         highlight=False)
        raise SystemExit(1) from exc
    if as_json:
        click.echo(json.dumps([asdict(p) for p in previews], indent=2, ensure_ascii=False,
                              default=str))
        return
    for preview in previews:
        _print(preview)


def _print(preview: RoutePreview) -> None:
    head = f"{preview.destination} ({preview.plugin}): {preview.decision}"
    _line(head + (f": {preview.reason}" if preview.reason else ""))
    if preview.payload is not None:
        _line("  routed payload:")
        _block(preview.payload)
    if preview.decision == "routed":
        sends = sum(1 for p in preview.planned if p.kind in ("http", "send"))
        _line(f"  planned: {sends} {'send' if sends == 1 else 'sends'}")
    for planned in preview.planned:
        _print_planned(planned)


def _print_planned(planned: PlannedView) -> None:
    items = ", ".join(planned.items)
    if planned.kind == "rejected":
        _line(f"    rejected [{items}]: {planned.reason}")
    elif planned.kind == "left out":
        _line(f"    left out [{items}] {planned.field}: {planned.reason}")
    else:
        rate = f"  rate key {planned.rate_key}" if planned.rate_key else ""
        _line(f"    {planned.method} {planned.target}  [{items}]{rate}")
    for name, value in planned.headers.items():
        _line(f"      {name}: {value}")
    if planned.body is not None:
        _block(planned.body, indent=6)


def _block(value: Any, indent: int = 4) -> None:
    text = value if isinstance(value, str) else json.dumps(value, indent=2,
                                                           ensure_ascii=False, default=str)
    for line in text.splitlines():
        _line(" " * indent + line)


def _line(text: str) -> None:
    common.console.print(text, markup=False, highlight=False, soft_wrap=True)
