"""Where plugins come from: the built-ins from DEFAULT_PLUGINS in-process, third parties from
the `crossdock` entry points; a third-party plugin that fails to import is a warning naming
it (its traceback with -v), and an error only for the destinations that use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crossdock.plugin_manager import DEFAULT_PLUGINS, destination_types, plugin_manager

BROKEN = ("warning: plugin 'broken' (broken_plugin) failed to import: ModuleNotFoundError: "
          "No module named 'acmesdk_not_installed'; destinations using it will not load")


def test_the_built_ins_are_registered_from_default_plugins_without_entry_points() -> None:
    names = [name for name, _ in plugin_manager().list_name_plugin()]
    assert names[:5] == ["webhook", "slack", "sessionm", "mailchimp", "facebook_audience"]
    built_in = names[:len(DEFAULT_PLUGINS)]  # then the destinations added since, in order
    assert [m.rpartition(".")[2] for m in DEFAULT_PLUGINS] == built_in
    types = destination_types()
    assert {cls.__module__ for name, cls in types.items() if name in built_in} == {
        f"{module}.destination" for module in DEFAULT_PLUGINS}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder on the path with a plugin distribution whose module cannot be imported."""
    folder = tmp_path / "site"
    dist = folder / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[crossdock]\nbroken = broken_plugin\n")
    (folder / "broken_plugin.py").write_text("import acmesdk_not_installed  # noqa\n")
    return folder


def crossdock(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "300"}
    env.pop("CROSSDOCK_LOAD_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "crossdock.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def write_config(folder: Path, plugin: str, settings: dict[str, str]) -> Path:
    path = folder / "crossdock.yaml"
    path.write_text(yaml.safe_dump({"collector": {"enabled": False}, "destinations": {
        "dest": {"plugin": plugin, "settings": settings}}}))
    return path


def test_a_plugin_that_fails_to_import_is_a_warning_naming_it(site: Path) -> None:
    done = crossdock(site, "plugins")
    assert done.returncode == 0, done.stderr
    assert BROKEN + " (-v shows the traceback)" in done.stderr
    assert "Traceback" not in done.stderr
    assert "webhook  POST routed messages" in done.stdout

    verbose = crossdock(site, "-v", "plugins")
    assert verbose.returncode == 0
    assert BROKEN in verbose.stderr and "(-v shows" not in verbose.stderr
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "broken_plugin.py" in verbose.stderr


def test_only_a_destination_using_the_broken_plugin_is_an_error(site: Path,
                                                                tmp_path: Path) -> None:
    config = write_config(tmp_path, "webhook", {"url": "https://receiver.example/in"})
    fine = crossdock(site, "validate", "-c", str(config))
    assert fine.returncode == 0, fine.stderr
    assert BROKEN in fine.stderr

    config = write_config(tmp_path, "broken", {})
    refused = crossdock(site, "validate", "-c", str(config))
    assert refused.returncode == 1
    assert ("destinations.dest.plugin: plugin 'broken' (broken_plugin) failed to import: "
            "ModuleNotFoundError: No module named 'acmesdk_not_installed' (crossdock -v "
            "plugins shows the traceback)") in refused.stderr
