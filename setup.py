"""Package discovery for the fixed layout: core/ -> crossdock, plugins/ -> crossdock.plugins.

pyproject.toml holds everything else; setuptools cannot map a found package tree onto a new
name by itself, so the sub-packages are listed here by walking the folders.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"core": "crossdock", "plugins": "crossdock.plugins", "mappings": "crossdock.mappings"}


def packages() -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    dirs: dict[str, str] = {}
    here = Path(__file__).parent
    for folder, package in ROOTS.items():
        for init in sorted((here / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(here / folder)
            name = ".".join([package, *rel.parts]) if rel.parts else package
            names.append(name)
            dirs[name] = str(init.parent.relative_to(here))
    return names, dirs


PACKAGES, PACKAGE_DIR = packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
