"""`crossdock plugins` (what is loaded, and the settings each destination takes) and
`crossdock plugins new NAME` (a new plugin package, crossdock.scaffold)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from crossdock.cli import common


@click.group("plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins_group(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins and the settings each destination type takes (`plugins new
    NAME` makes a new plugin package)."""
    if ctx.invoked_subcommand is not None:
        return
    from crossdock.plugin_manager import destination_types, plugin_manager

    pm = plugin_manager()
    rows = [_row(name, cls) for name, cls in sorted(destination_types(pm).items())]
    if as_json:
        click.echo(json.dumps({"plugins": [n for n, _ in pm.list_name_plugin()],
                               "destinations": rows}, indent=2))
        return
    for row in rows:
        common.console.print(f"[bold]{row['plugin']}[/bold]  {row['description']}  "
                      f"[dim]({row['module']}, batch {row['batch_size']} ≤ "
                      f"{row['max_batch_size']}, auth {row['auth']})[/dim]", soft_wrap=True)
        if row["docs_url"]:
            common.console.print(f"    docs: {row['docs_url']}", highlight=False, markup=False,
                          soft_wrap=True)
        for key, info in row["settings"].items():
            flag = "required" if info["required"] else "optional"
            if "default" in info:
                flag += f", default {json.dumps(info['default'])}"
            common.console.print(f"    {key}: {info['type']} ({flag}) {info['description']}",
                          highlight=False, markup=False, soft_wrap=True)


def _row(name: str, cls: Any) -> dict[str, Any]:
    manifest = cls.describe()
    schema = cls.settings_model.model_json_schema()
    required = set(schema.get("required", []))
    settings = {
        key: {"type": _schema_type(prop), "required": key in required,
              "description": prop.get("description", ""), **_default(prop)}
        for key, prop in schema.get("properties", {}).items()
    }
    return {"plugin": name, "module": cls.__module__, "description": manifest.description,
            "docs_url": manifest.docs_url, "auth": manifest.auth,
            "other_auth": sorted(manifest.other_auth),
            "message_types": sorted(manifest.message_types),
            "batch_size": manifest.batch_size, "max_batch_size": manifest.largest_batch,
            "rate_limit": manifest.rate_limit, "concurrency": manifest.concurrency,
            "settings": settings}


def _default(prop: dict[str, Any]) -> dict[str, Any]:
    """{"default": value} when the setting has one worth showing (not None, not a secret)."""
    secret = prop.get("format") == "password" or any(
        p.get("format") == "password" for p in prop.get("anyOf", []))
    if prop.get("default") is None or secret:
        return {}
    return {"default": prop["default"]}


def _schema_type(prop: dict[str, Any]) -> str:
    if "enum" in prop:  # a Literal: the values it takes say more than "string"
        return " | ".join(str(v) for v in prop["enum"])
    if "type" in prop:
        return str(prop["type"]) + (f" ({prop['format']})" if "format" in prop else "")
    if "anyOf" in prop:
        return " | ".join(_schema_type(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    return "any"


@plugins_group.command("new")
@click.argument("name")
@click.option("--into", "parent", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True,
              help="The folder the package's folder (crossdock-NAME) is made in.")
def new_plugin(name: str, parent: Path) -> None:
    """Make crossdock-NAME/: an installable plugin package (settings, mapping, destination,
    contract fake, tests with a recorded cassette, docs page) whose tests pass as made."""
    from crossdock.scaffold import ScaffoldError, scaffold

    try:
        made = scaffold(name, parent)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from exc
    console = common.console
    console.print(f"made {made.root}/ ({len(made.files)} files)", highlight=False,
                  markup=False, soft_wrap=True)
    for path in made.files:
        console.print(f"  {path.relative_to(made.root)}", highlight=False, markup=False,
                      soft_wrap=True)
    common.err_console.print(
        f"\nnext:\n  pip install -e '{made.root}[test]'\n  cd {made.root} && python -m pytest"
        f"\n  crossdock plugins   # lists {made.name}", highlight=False, markup=False,
        soft_wrap=True)
