"""`crossdock profiles show/delete` on a real config and SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from audience_helpers import ENGINES, engine_url
from click.testing import CliRunner

from crossdock.config import load_config
from crossdock.models import parse_message
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import build_pipeline
from crossdock.profiles import ProfileStore
from crossdock.profiles_cli import profiles_group


def test_show_and_delete(tmp_path: Path) -> None:
    config = tmp_path / "crossdock.yaml"
    config.write_text("outbox: {url: sqlite:///crossdock.db}\n")
    box = SQLiteOutbox(tmp_path / "crossdock.db")
    store = ProfileStore(db=box.db)
    for raw in (
        {"type": "page", "anonymousId": "a1", "sessionId": "s1"},
        {"type": "identify", "anonymousId": "a1", "userId": "u1",
         "traits": {"firstName": "Ann", "plan": "pro", "emailOptIn": True}},
    ):
        with box.transaction() as db:
            store.resolve(db, parse_message(raw))
    box.close()
    runner = CliRunner()
    result = runner.invoke(profiles_group, ["show", "-c", str(config), "a1"])
    assert result.exit_code == 0, result.output
    assert "known, userId u1" in result.output
    assert "firstName (string): \"Ann\"" in result.output
    assert "email: granted" in result.output and "s1:" in result.output
    result = runner.invoke(profiles_group, ["show", "-c", str(config), "u1", "--json"])
    assert json.loads(result.output)["attributes"]["custom"]["plan"]["value"] == "pro"
    result = runner.invoke(profiles_group, ["delete", "-c", str(config), "u1", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deleted profile p_")
    result = runner.invoke(profiles_group, ["show", "-c", str(config), "a1"])
    assert result.exit_code == 1 and "no profile for 'a1'" in result.output


@pytest.fixture(params=ENGINES)
def engine_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A config whose outbox is a SQLite file or a fresh PostgreSQL schema, holding u1."""
    with engine_url(request.param, tmp_path) as url:
        path = tmp_path / "crossdock.yaml"
        hook = {"plugin": "webhook",
                "settings": {"url": "http://127.0.0.1:9/hook", "allow_private_network": True},
                "filter": {"events": {"allow": ["profile_deleted"]}}}
        path.write_text(yaml.safe_dump({"outbox": {"url": url},
                                        "destinations": {"erasure": hook}}))
        pipeline = build_pipeline(load_config(path))
        result = pipeline.accept([{"type": "identify", "anonymousId": "a1", "userId": "u1",
                                   "traits": {"firstName": "Ann", "plan": "pro"}}])
        assert not result.errors
        pipeline.close()
        yield str(path)


def test_show_and_delete_on_either_engine(engine_config: str) -> None:
    # docs/profiles.md: the store lives in the outbox's database, SQLite or PostgreSQL; the
    # commands refused a PostgreSQL outbox ("the profile store lives in a SQLite outbox").
    runner = CliRunner()
    result = runner.invoke(profiles_group, ["show", "-c", engine_config, "a1"])
    assert result.exit_code == 0, result.output
    assert "known, userId u1" in result.output and 'plan (string): "pro"' in result.output
    result = runner.invoke(profiles_group, ["delete", "-c", engine_config, "u1", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 deletion events queued" in result.output
    result = runner.invoke(profiles_group, ["show", "-c", engine_config, "u1"])
    assert result.exit_code == 1 and "no profile for 'u1'" in result.output
