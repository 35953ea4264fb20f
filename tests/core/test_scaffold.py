"""`crossdock plugins new NAME` makes a complete plugin package that installs (a real wheel,
built and installed by pip into a folder of its own) and passes its own tests as made: unit,
contract fake, recorded cassette, whole pipeline and the conformance suite; and its code is
clean by ruff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crossdock.scaffold import ScaffoldError, names, scaffold

FILES = ["README.md", "docs/acme.md", "pyproject.toml", "src/crossdock_acme/__init__.py",
         "src/crossdock_acme/const.py", "src/crossdock_acme/destination.py",
         "src/crossdock_acme/fake.py", "src/crossdock_acme/mapping.yaml",
         "src/crossdock_acme/py.typed", "src/crossdock_acme/settings.py",
         "tests/cassettes/delivered.yaml", "tests/test_acme.py"]


def run(*args: str | Path, cwd: Path | None = None, site: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CROSSDOCK_LOAD_PLUGINS", None)
    env.pop("CROSSDOCK_RECORD", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def install(package: Path, site: Path) -> None:
    """pip builds the package's wheel and installs it into `site` (not this environment)."""
    done = run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
               "--no-build-isolation", "--target", site, package)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_new_plugin_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    made = run(sys.executable, "-m", "crossdock.cli", "plugins", "new", "acme",
               "--into", tmp_path)
    assert made.returncode == 0, made.stderr
    package = tmp_path / "crossdock-acme"
    assert f"made {package}/ (12 files)" in made.stdout
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == (
        FILES)

    lint = run(sys.executable, "-m", "ruff", "check", "--no-cache", package, cwd=package)
    assert lint.returncode == 0, lint.stdout

    site = tmp_path / "site"
    install(package, site)
    assert (site / "crossdock_acme" / "mapping.yaml").is_file()  # package data in the wheel

    tests = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package,
                site=site)
    assert tests.returncode == 0, tests.stdout[-4000:]
    assert "19 passed" in tests.stdout, tests.stdout[-2000:]

    listed = run(sys.executable, "-m", "crossdock.cli", "plugins", "--json", site=site)
    assert listed.returncode == 0, listed.stderr
    acme = {d["plugin"]: d for d in json.loads(listed.stdout)["destinations"]}["acme"]
    assert (acme["module"], acme["docs_url"], acme["auth"]) == (
        "crossdock_acme.destination", "docs/acme.md", "bearer")


def test_the_names_a_plugin_is_made_with() -> None:
    assert names("tiktok_ads") == {
        "@name@": "tiktok_ads", "@NAME@": "TIKTOK_ADS", "@Name@": "TiktokAds",
        "@Title@": "Tiktok Ads", "@package@": "crossdock_tiktok_ads",
        "@dist@": "crossdock-tiktok-ads"}


@pytest.mark.parametrize("name", ["Acme", "2fa", "ab", "acme-api", "acme_", "a" * 41])
def test_a_bad_name_is_refused_with_the_rule(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match="3 to 40 lower-case letters, digits and _"):
        scaffold(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_installed_name_or_a_folder_in_the_way_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="a destination type of that name is installed"):
        scaffold("webhook", tmp_path)
    (tmp_path / "crossdock-acme").mkdir()
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold("acme", tmp_path)
