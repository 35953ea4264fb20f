"""`crossdock profiles show/delete` on a real config and SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from audience_helpers import ENGINES, engine_url, members, outbox_rows
from click.testing import CliRunner

from crossdock.cli.profiles import profiles_group
from crossdock.loader import load_config
from crossdock.models import parse_message
from crossdock.outbox import open_outbox
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import build_pipeline
from crossdock.profiles import ProfileStore


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
                "settings": {"url": "http://127.0.0.1:9/hook"},
                "delivery": {"allow_private_network": True},
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
    assert "1 outbox rows queued" in result.output
    result = runner.invoke(profiles_group, ["show", "-c", engine_config, "u1"])
    assert result.exit_code == 1 and "no profile for 'u1'" in result.output


def test_delete_takes_the_person_out_of_every_audience_at_once(engine: str,
                                                               tmp_path: Path) -> None:
    # Erasure must reach the audience destinations now: before, the person stayed in
    # every audience until its next full sync (a day away on a daily schedule).
    hook = {"plugin": "webhook",
            "settings": {"url": "http://127.0.0.1:9/hook"},
            "delivery": {"allow_private_network": True},
            "filter": {"events": {"allow": ["profile_deleted", "audience_entered",
                                            "audience_exited"]}}}
    with engine_url(engine, tmp_path) as url:
        path = tmp_path / "crossdock.yaml"
        path.write_text(yaml.safe_dump({
            "outbox": {"url": url},
            "destinations": {"fb": hook, "mc": hook},
            "audiences": {
                "high_value": {"condition": "lifetime_value > 500", "destinations": ["fb"]},
                "daily": {"condition": "lifetime_value > 100", "destinations": ["mc"],
                          "schedule": "0 3 * * *", "sync_on_change": False},
                # Holds for a profile without attributes: an erased one must not re-enter.
                "not_vip": {"condition": "not vip", "destinations": ["mc"],
                            "sync_on_change": False},
            }}))
        pipeline = build_pipeline(load_config(path))
        pipeline.accept([
            {"type": "identify", "anonymousId": "a1", "traits": {"email": "ann@example.com"}},
            {"type": "identify", "anonymousId": "a1", "userId": "u1",
             "traits": {"lifetime_value": 900, "vip": True}},
            {"type": "identify", "userId": "u2", "traits": {"lifetime_value": 700}},
        ])
        pipeline.close()
        result = CliRunner().invoke(profiles_group,
                                    ["delete", "-c", str(path), "u1", "--yes"])
        assert result.exit_code == 0, result.output  # no full sync of "daily" ran: not in it
        assert "left 1 audiences" in result.output
        from crossdock.audiences.sync import sync

        pipeline = build_pipeline(load_config(path))
        assert sync(pipeline, ["daily"]).entered == {"daily": 1}  # u2 only
        pipeline.close()
        result = CliRunner().invoke(profiles_group,
                                    ["delete", "-c", str(path), "u2", "--yes"])
        assert result.exit_code == 0, result.output
        assert "left 2 audiences" in result.output

        outbox = open_outbox(url)
        try:
            assert members(outbox, "high_value") == members(outbox, "daily") == set()
            assert members(outbox, "not_vip") == set()
            tail = [(d, p.get("event"), p.get("userId")) for d, p in outbox_rows(outbox)
                    if p.get("event") in ("audience_exited", "profile_deleted")]
        finally:
            outbox.close()
    # Each person's exits come before their profile_deleted (a destination that erases on
    # profile_deleted could not untag them afterwards), and carry their identities.
    assert tail == [
        ("fb", "audience_exited", "u1"), ("fb", "profile_deleted", "u1"),
        ("mc", "profile_deleted", "u1"),
        ("mc", "audience_exited", "u2"), ("fb", "audience_exited", "u2"),
        ("fb", "profile_deleted", "u2"), ("mc", "profile_deleted", "u2"),
    ]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_attributes_lists_the_account_definitions_on_either_engine(engine_config: str) -> None:
    pipeline = build_pipeline(load_config(engine_config))
    pipeline.accept([{"type": "identify", "userId": "u2",
                      "traits": {"plan": 3, "firstName": "Bo", "age": 40}}])
    pipeline.close()
    runner = CliRunner()
    result = runner.invoke(profiles_group, ["attributes", "-c", engine_config, "--json"])
    assert result.exit_code == 0, result.output
    found = {(d["part"], d["name"]): (d["type"], d["profiles"], d["rejected"])
             for d in json.loads(result.output)}
    # plan was defined a string by u1's "pro": u2's number was rejected.
    assert found == {("custom", "plan"): ("string", 1, 1), ("custom", "age"): ("number", 1, 0),
                     ("system", "firstName"): ("string", 2, 0)}
    assert all(d["first_seen"].endswith("Z") for d in json.loads(result.output))
    result = runner.invoke(profiles_group, ["attributes", "-c", engine_config])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert any(line.startswith("plan custom string ") and line.endswith(" 1 1")
               for line in lines), result.output


def test_show_by_one_kind_of_id_and_the_audiences_of_the_person(tmp_path: Path) -> None:
    # An anonymousId that is someone else's userId: --by says which person is meant.
    path = tmp_path / "crossdock.yaml"
    path.write_text(yaml.safe_dump({
        "outbox": {"url": "sqlite:///c.db"},
        "destinations": {"fb": {"plugin": "webhook",
                                "settings": {"url": "http://127.0.0.1:9/hook"},
                                "delivery": {"allow_private_network": True}}},
        "audiences": {"pro": {"condition": 'plan == "pro"', "destinations": ["fb"]}}}))
    pipeline = build_pipeline(load_config(path))
    pipeline.accept([
        {"type": "identify", "userId": "x1", "traits": {"email": "Ann@Example.com",
                                                       "plan": "pro"}},
        {"type": "identify", "anonymousId": "x1", "traits": {"plan": "free"}}])
    pipeline.close()
    runner = CliRunner()

    def show(*args: str) -> dict[str, Any]:
        result = runner.invoke(profiles_group, ["show", "-c", str(path), "--json", *args])
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output))

    ann = show("x1", "--by", "userId")
    assert ann["userId"] == "x1"
    assert ann["audiences"][0]["audience"] == "pro"
    assert ann["audiences"][0]["entered_at"].endswith("Z")
    other = show("x1", "--by", "anonymousId")
    assert other["id"] != ann["id"] and other["audiences"] == []
    assert show(" ann@example.COM ", "--by", "email")["id"] == ann["id"]
    assert show(ann["id"], "--by", "profileId")["id"] == ann["id"]
    result = runner.invoke(profiles_group, ["show", "-c", str(path), "x1", "--by", "email"])
    assert result.exit_code == 1 and "no profile for 'x1' (tried email)" in result.output
    result = runner.invoke(profiles_group, ["show", "-c", str(path), "x1", "--by", "phone"])
    assert result.exit_code == 2 and "'phone' is not one of" in result.output
    result = runner.invoke(profiles_group, ["show", "-c", str(path), "  "])
    assert result.exit_code == 1 and "ref: a profile id, userId" in result.output
    text = runner.invoke(profiles_group, ["show", "-c", str(path), "x1", "--by", "userId"])
    assert "audiences:\n  pro since " in text.output
    result = runner.invoke(profiles_group, ["delete", "-c", str(path), "x1", "--by", "anonymousId",
                                            "--yes"])
    assert result.exit_code == 0, result.output
    assert show("x1", "--by", "userId")["id"] == ann["id"]  # the other person stays


def test_dictionary_on_either_engine(engine_config: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from crossdock.cli import common

    monkeypatch.setattr(common, "console", Console(width=250))
    pipeline = build_pipeline(load_config(engine_config))
    pipeline.accept([{"type": "track", "userId": "u1", "event": "Order Completed",
                      "properties": {"total": 10}, "context": {"traits": {"we_x": 1}}},
                     {"type": "identify", "userId": "u2", "traits": {"plan": 3}}])
    pipeline.close()
    runner = CliRunner()
    result = runner.invoke(profiles_group, ["dictionary", "-c", engine_config, "--json",
                                            "--days", "2"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert len(found["days"]) == 2
    entries = {(e["kind"], e["name"]): e for e in found["entries"]}
    assert entries[("event", "Order Completed")]["per_day"][-1] == 1
    assert entries[("property", "total")]["types"] == {"number": 1}
    # The fixture's identify defined plan as a string: u2's number is rejected.
    assert entries[("trait", "plan")]["defined_type"] == "string"
    assert entries[("trait", "plan")]["rejected"] == {"type": 1}
    assert found["rejected_by_rule"] == {"reserved_prefix": 1, "type": 1}
    result = runner.invoke(profiles_group, ["dictionary", "-c", engine_config])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert any(line.startswith("event Order Completed track 1 ") for line in lines), lines
    assert any(line.startswith("plan wrong type 1 ") for line in lines), lines
    assert "rejected by rule: reserved_prefix 1, type 1" in result.output
    result = runner.invoke(profiles_group, ["dictionary", "-c", engine_config, "--days", "0"])
    assert result.exit_code == 2 and "--days" in result.output
