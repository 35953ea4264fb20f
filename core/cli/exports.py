"""`crossdock exports list | run NAME | history [NAME]` ."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click
from rich.table import Table

from crossdock.cli import common
from crossdock.outbox.base import shared_sql


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.group("exports", cls=common.CrossdockGroup)
def exports_group() -> None:
    """Snapshot exports: the profile store, or an audience, as files on a schedule."""


@exports_group.command("list")
@common.config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(config_path: str, as_json: bool) -> None:
    """Each export: what it writes where, its last run, last file, rows waiting and lag."""
    from crossdock.snapshots.run import status

    with (common.opened_pipeline(config_path, "exports") as (pipeline, _),
          pipeline.outbox.transaction() as tx):
        found = status(shared_sql(tx), pipeline.loaded)
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
    common.console.print(table)


@exports_group.command("run")
@common.config_option
@click.argument("name")
def run(config_path: str, name: str) -> None:
    """Run the export NAME now: its rows go to its destination's outbox, cut into files
    that a running daemon (or `crossdock deliver`) writes."""
    from crossdock.snapshots.run import run_export

    with common.opened_pipeline(config_path, "exports") as (pipeline, store):
        try:
            done = run_export(pipeline, name, store=store)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
    assert done is not None
    click.echo(f"export {name}: run {done.id} ({done.mode}) queued {done.rows} rows in "
               f"{done.files} files for {done.destination}")


@exports_group.command("history")
@common.config_option
@click.argument("name", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def history_(config_path: str, name: str | None, limit: int, as_json: bool) -> None:
    """The latest runs (of NAME, or of every export), newest first."""
    from crossdock.snapshots.run import export_config, history

    with common.opened_pipeline(config_path, "exports") as (pipeline, _):
        if name is not None:
            try:
                export_config(pipeline.loaded, name)
            except KeyError as exc:
                raise click.ClickException(str(exc.args[0])) from exc
        with pipeline.outbox.transaction() as tx:
            db = shared_sql(tx)
            runs = history(db, name, limit)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in runs], indent=2))
        return
    table = Table("run", "export", "destination", "mode", "started", "finished", "state",
                  "rows", "files", "error")
    for r in runs:
        table.add_row(str(r.id), r.export, r.destination, r.mode, _when(r.started_at),
                      _when(r.finished_at), r.state, str(r.rows), str(r.files), r.error or "")
    common.console.print(table)
