"""The import rules of docs/architecture.md ("Layers and imports"): no import circles, the
layers, the engine never imports a plugin, plugins import only the public plugin API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # Imports inside functions count (they run when the function does); those made only for
    # type checking do not (they run nowhere).
    return grimp.build_graph("crossdock", exclude_type_checking_imports=True, cache_dir=None)


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (the strongly
    connected components of more than one module, Tarjan's algorithm without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append((other, iter(sorted(graph.find_modules_directly_imported_by(
                        other)))))
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return sorted(found)


def test_no_module_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    assert circles(graph) == []


def test_a_circle_is_found() -> None:
    # The circle of crossdock.config and its duration parser (crossdock.durations) that this
    # check keeps from coming back, put back into a copy of the graph.
    copy = grimp.build_graph("crossdock", exclude_type_checking_imports=True, cache_dir=None)
    copy.add_import(importer="crossdock.durations", imported="crossdock.config")
    assert any({"crossdock.config", "crossdock.durations"} <= set(group)
               for group in circles(copy))


def test_the_import_contracts_hold() -> None:
    # pyproject.toml [tool.importlinter]: the layers, the engine never imports a plugin,
    # plugins import only the public plugin API, no circles between packages at any depth.
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config",
         str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
