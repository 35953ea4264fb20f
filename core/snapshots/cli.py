"""`crossdock exports list | run NAME | history [NAME]` (attached by crossdock.cli)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import click
from rich.table import Table

from crossdock.cli import CrossdockGroup, config_option, console, load_or_exit
from crossdock.outbox.base import shared_sql


def _open(config_path: str) -> tuple[Any, Any, Any]:
    """(outbox, pipeline, profile store) of the config's outbox, SQLite or PostgreSQL."""
    from crossdock.outbox import open_outbox
    from crossdock.pipeline import build_pipeline

    loaded = load_or_exit(config_path)
    outbox = open_outbox(loaded.outbox_url)
    pipeline = build_pipeline(loaded, outbox)
    if pipeline.profiles is None:
        outbox.close()
        raise click.ClickException("exports: no profile store for this outbox")
    return outbox, pipeline, pipeline.profiles


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.group("exports", cls=CrossdockGroup)
def exports_group() -> None:
    """Snapshot exports: the profile store, or an audience, as files on a schedule."""


@exports_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(config_path: str, as_json: bool) -> None:
    """Each export: what it writes where, its last run, last file, rows waiting and lag."""
    from crossdock.snapshots.run import status

    outbox, pipeline, _ = _open(config_path)
    try:
        with outbox.transaction() as tx:
            db = shared_sql(tx)
            found = status(db, pipeline.loaded)
    finally:
        outbox.close()
    if as_json:
        click.echo(json.dumps([
            {"name": s.name, **s.config.model_dump(),
             "last_run": None if s.last_run is None else asdict(s.last_run),
             "last_file": None if s.last_file is None else asdict(s.last_file),
             "waiting": s.waiting, "dead": s.dead, "lag_seconds": s.lag}
            for s in found], indent=2))
        return
    if not found:
        click.echo("no exports configured (exports: in the config; docs/exports.md)")
        return
    table = Table("name", "destination", "of", "mode", "schedule", "last run", "rows",
                  "last file", "file rows", "bytes", "waiting", "dead", "lag")
    for s in found:
        run, file = s.last_run, s.last_file
        table.add_row(
            s.name, s.config.destination, s.config.audience or "profiles", s.config.mode,
            s.config.schedule or "by hand",
            "-" if run is None else f"{_when(run.started_at)} {run.state}",
            "-" if run is None else str(run.rows),
            "-" if file is None else file.name, "-" if file is None else str(file.rows),
            "-" if file is None else str(file.bytes), str(s.waiting), str(s.dead),
            _ago(s.lag))
    console.print(table)


@exports_group.command("run")
@config_option
@click.argument("name")
def run(config_path: str, name: str) -> None:
    """Run the export NAME now: its rows go to its destination's outbox, cut into files
    that a running daemon (or `crossdock deliver`) writes."""
    from crossdock.snapshots.run import run_export

    outbox, pipeline, store = _open(config_path)
    try:
        try:
            done = run_export(pipeline, name, store=store)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
    finally:
        outbox.close()
    assert done is not None
    click.echo(f"export {name}: run {done.id} ({done.mode}) queued {done.rows} rows in "
               f"{done.files} files for {done.destination}")


@exports_group.command("history")
@config_option
@click.argument("name", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def history_(config_path: str, name: str | None, limit: int, as_json: bool) -> None:
    """The latest runs (of NAME, or of every export), newest first."""
    from crossdock.snapshots.run import export_config, history

    outbox, pipeline, _ = _open(config_path)
    try:
        if name is not None:
            try:
                export_config(pipeline.loaded, name)
            except KeyError as exc:
                raise click.ClickException(str(exc.args[0])) from exc
        with outbox.transaction() as tx:
            db = shared_sql(tx)
            runs = history(db, name, limit)
    finally:
        outbox.close()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in runs], indent=2))
        return
    table = Table("run", "export", "destination", "mode", "started", "finished", "state",
                  "rows", "files", "error")
    for r in runs:
        table.add_row(str(r.id), r.export, r.destination, r.mode, _when(r.started_at),
                      _when(r.finished_at), r.state, str(r.rows), str(r.files), r.error or "")
    console.print(table)
