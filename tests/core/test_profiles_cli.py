"""`crossdock profiles show/delete` on a real config and SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from crossdock.models import parse_message
from crossdock.outbox.sqlite import SQLiteOutbox
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
