"""`crossdock plugins new NAME` makes a complete plugin package, clean by ruff. That it
installs (its wheel built and installed by pip) and passes its own tests as made (unit, fake,
recorded cassette, whole pipeline, conformance suite) is shown by tests/core/test_plugin_guide.py,
which follows the plugin guide from `crossdock plugins new acme` on."""

from __future__ import annotations

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


def test_a_new_plugin_has_every_file_and_is_clean_by_ruff(tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "crossdock.cli", "plugins", "new", "acme",
                           "--into", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    package = tmp_path / "crossdock-acme"
    assert f"made {package}/ (12 files)" in made.stdout
    assert f"pip install -e '{package}[test]'" in made.stderr  # what to do next
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == (
        FILES)
    assert "@" not in (package / "src/crossdock_acme/destination.py").read_text()
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                          capture_output=True, text=True, cwd=package, timeout=60)
    assert lint.returncode == 0, lint.stdout


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
