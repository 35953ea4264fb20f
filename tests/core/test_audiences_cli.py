"""`crossdock audiences list | preview | sync` on a config file and its outbox, on both
engines (a SQLite file next to the config, a fresh PostgreSQL schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from audience_helpers import ENGINES, engine_url
from click.testing import CliRunner

from crossdock.cli import cli
from crossdock.loader import load_config
from crossdock.pipeline import build_pipeline

HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}


@pytest.fixture(params=ENGINES)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with engine_url(request.param, tmp_path) as url:
        yield _config(tmp_path, url if request.param != "sqlite" else "sqlite:///c.db")


def _config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "crossdock.yaml"
    path.write_text(yaml.safe_dump({
        "outbox": {"url": url},
        "destinations": {"fb": HOOK, "mc": HOOK},
        "audiences": {
            "high_value": {"condition": "lifetime_value > 500", "destinations": ["fb", "mc"],
                           "schedule": "1h", "sync_on_change": False},
            "norway": {"condition": 'country == "NO"', "destinations": ["mc"]},
        },
    }))
    loaded = load_config(path)
    pipeline = build_pipeline(loaded)
    result = pipeline.accept([
        {"type": "identify", "userId": f"u{i}",
         "traits": {"email": f"p{i}@example.com", "lifetime_value": v, "country": c}}
        for i, (v, c) in enumerate([(100, "NO"), (600, "SE"), (900, "NO")])])
    assert not result.errors
    pipeline.close()
    return str(path)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_preview_sync(config: str) -> None:
    rows = json.loads(run("audiences", "list", "-c", config, "--json"))
    assert [(r["name"], r["members"]) for r in rows] == [("high_value", 0), ("norway", 2)]
    assert rows[0]["schedule"] == "1h" and rows[0]["destinations"] == ["fb", "mc"]
    assert "high_value" in run("audiences", "list", "-c", config)

    preview = json.loads(run("audiences", "preview", "high_value", "-c", config, "--json"))
    assert sorted(p["userId"] for p in preview["would_enter"]) == ["u1", "u2"]
    assert preview["would_exit"] == []
    assert "2 would enter, 0 would leave" in run("audiences", "preview", "high_value",
                                                 "-c", config)
    # Previewing changed nothing.
    rows = json.loads(run("audiences", "list", "-c", config, "--json"))
    assert rows[0]["members"] == 0 and rows[0]["last_sync_at"] is None

    out = run("audiences", "sync", "high_value", "-c", config)
    assert "high_value: 2 entered, 0 left" in out
    assert "norway" not in out
    rows = json.loads(run("audiences", "list", "-c", config, "--json"))
    assert rows[0]["members"] == 2 and rows[0]["last_sync_at"] is not None
    assert "high_value: 0 entered, 0 left" in run("audiences", "sync", "-c", config)


def test_unknown_audience(config: str) -> None:
    result = CliRunner().invoke(cli, ["audiences", "preview", "nope", "-c", config])
    assert result.exit_code == 1
    assert "unknown audience 'nope' (known: high_value, norway)" in result.output
