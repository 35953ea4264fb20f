"""`crossdock plugins new NAME`: a new destination plugin as a complete installable package,
whose tests pass as made (tests/core/test_scaffold.py installs one and runs them).

    crossdock-acme/
      pyproject.toml                the `crossdock` entry point, package data, the test extra
      README.md
      docs/acme.md                  the operator's page (the manifest's docs_url)
      src/crossdock_acme/
        __init__.py                 the hookimpls: register_destinations and the demo's
        const.py  settings.py       constants; settings and mapping options (pydantic)
        destination.py              the manifest, build_requests, classify
        mapping.yaml                the shipped mapping
        fake.py                     the contract fake (and its runner)
      tests/test_acme.py            unit, fake, cassette and pipeline tests, and the
      tests/cassettes/delivered.yaml  conformance suite; the cassette recorded from the fake

The files are made from template/ (package data), with @name@, @Name@, @NAME@, @Title@,
@package@ and @dist@ replaced; a folder or file called __package__ / __name__ takes the
package's / plugin's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from crossdock.errors import CrossdockError

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,38}[a-z0-9]$")


class ScaffoldError(CrossdockError):
    """The plugin cannot be made (a bad name, a folder in the way); the text says why."""


@dataclass
class Scaffolded:
    """A made plugin package: its name, folder and files."""

    name: str
    root: Path
    files: list[Path] = field(default_factory=list)


def names(name: str) -> dict[str, str]:
    """What each placeholder of the templates stands for, for plugin `name`."""
    words = name.split("_")
    return {"@name@": name, "@NAME@": name.upper(),
            "@Name@": "".join(word.capitalize() for word in words),
            "@Title@": " ".join(word.capitalize() for word in words),
            "@package@": f"crossdock_{name}", "@dist@": f"crossdock-{name.replace('_', '-')}"}


def scaffold(name: str, parent: Path) -> Scaffolded:
    """Make crossdock-NAME/ in `parent`; ScaffoldError for a bad or taken name."""
    if not _NAME.match(name):
        raise ScaffoldError(f"{name!r}: a plugin name is 3 to 40 lower-case letters, digits and "
                            "_, starting with a letter (it is what operators write as plugin:)")
    from crossdock.plugin_manager import destination_types

    if name in destination_types():
        raise ScaffoldError(f"{name!r}: a destination type of that name is installed already")
    values = names(name)
    root = parent / values["@dist@"]
    if root.exists():
        raise ScaffoldError(f"{root}: already exists; choose another folder (--into) or name")
    made = Scaffolded(name, root)
    _copy(resources.files("crossdock.scaffold").joinpath("template"), root, values, made)
    return made


def _copy(source: Traversable, target: Path, values: dict[str, str], made: Scaffolded) -> None:
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        name = (entry.name.removesuffix(".tmpl").replace("__package__", values["@package@"])
                .replace("__name__", values["@name@"]))
        if entry.is_dir():
            _copy(entry, target / name, values, made)
            continue
        text = entry.read_text()
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        made.files.append(path)
