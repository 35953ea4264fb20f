"""What `pip install crossdock` brings: every runtime dependency is one the code imports,
PostgreSQL's driver is an extra (and its absence is a clear error), the licence file the
README promises is there, and `-v` works wherever it is typed."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossdock.cli import root as cli_module
from crossdock.errors import OutboxError
from crossdock.outbox import open_outbox

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_name(requirement: str) -> str:
    """`psycopg[binary]>=3.1` -> psycopg (normalized as pip does)."""
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_distributions(*folders: str) -> set[str]:
    """The distributions whose top-level modules the Python files under `folders` import."""
    provides = importlib.metadata.packages_distributions()
    return {requirement_name(dist) for module in imported_modules(*folders)
            for dist in provides.get(module.split(".")[0], [])}


#: dependencies the code uses through another package's module, and that module
USED_THROUGH = {"httptools": "uvicorn.protocols.http.httptools_impl"}


def imported_modules(*folders: str) -> set[str]:
    """The modules the Python files under `folders` import (absolute imports)."""
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module)
    return found


def test_every_runtime_dependency_is_imported_by_the_code() -> None:
    # pydantic-settings was installed for everyone and imported nowhere.
    declared = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    modules = imported_modules("core", "plugins")
    through = {name for name, module in USED_THROUGH.items() if module in modules}
    unused = declared - imported_distributions("core", "plugins") - through
    assert not unused, f"dependencies nothing imports: {sorted(unused)}"


def test_psycopg_is_the_postgres_extra_and_the_tests_pull_it_in() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "psycopg" not in {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert [requirement_name(r) for r in extras["postgres"]] == ["psycopg"]
    assert "crossdock[postgres]" in extras["test"]


def test_no_test_dependency_nothing_uses() -> None:
    # respx was in the test extra with no test using it (the fakes are real loopback servers).
    extras = PYPROJECT["project"]["optional-dependencies"]
    test_extra = {requirement_name(r) for r in extras["test"]}
    assert "respx" not in test_extra
    assert "respx" not in imported_distributions("tests", "core", "plugins", "bench")


def test_a_postgresql_outbox_without_psycopg_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in an environment installed without the extra: importing psycopg fails.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for name in ("crossdock.outbox.postgres", "crossdock.outbox.pg_schema"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(OutboxError) as caught:
        open_outbox("postgresql://crossdock:hunter2@127.0.0.1:9/crossdock")
    message = str(caught.value)
    assert "needs psycopg" in message and "pip install 'crossdock[postgres]'" in message
    assert "hunter2" not in message


def test_the_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:3] == ["Apache", "License", "Version"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "## License\n\nApache-2.0" in (ROOT / "README.md").read_text()


def test_the_changelog_has_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {PYPROJECT['project']['version']}" in text or "## Unreleased" in text


@pytest.mark.parametrize("args", [
    ["-v", "validate"], ["validate", "-v"], ["validate", "--verbose"], ["validate", "-vv"],
])
def test_verbose_works_before_and_after_the_subcommand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
) -> None:
    # `crossdock validate -v` was "No such option: -v".
    seen: list[int] = []
    monkeypatch.setattr(cli_module, "_warn_of_plugin_failures", seen.append)
    config = tmp_path / "crossdock.yaml"
    config.write_text("outbox: {url: 'sqlite:///o.db'}\ncollector: {enabled: false}\n")
    result = CliRunner().invoke(cli_module.cli, [*args, "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert seen == [2 if "-vv" in args else 1]
