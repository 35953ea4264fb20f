"""`crossdock dead-letters replay` re-routes kept messages through the current filter and
mapping, and `crossdock backfill` routes a period's kept messages to one destination: in
process through click's CliRunner, on real config files and a real SQLite outbox (the
outbox calls themselves run on PostgreSQL too, in test_outbox_contract.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from rich.console import Console

from crossdock.cli import cli
from crossdock.cli import common as cli_module
from crossdock.loader import load_config
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import build_pipeline


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "console", Console(width=200, no_color=True))
    monkeypatch.setattr(cli_module, "err_console",
                        Console(width=200, no_color=True, stderr=True))


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def hook(**extra: Any) -> dict[str, Any]:
    return {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/in"},
            "delivery": {"allow_private_network": True}, **extra}


def write_config(tmp_path: Path, destinations: dict[str, Any], **outbox: Any) -> Path:
    path = tmp_path / "crossdock.yaml"
    path.write_text(yaml.safe_dump({
        "outbox": {"url": "sqlite:///outbox.db", **outbox}, "collector": {"enabled": False},
        "destinations": destinations,
    }, sort_keys=False))
    return path


def message(n: int, user: str = "u-1") -> dict[str, Any]:
    return {"type": "track", "messageId": f"m{n}", "userId": user, "event": "Order Completed",
            "timestamp": "2026-11-02T12:00:00Z",
            "properties": {"total": 10 + n, "card_number": "4111"}}


def accept(config: Path, *messages: dict[str, Any]) -> None:
    pipeline = build_pipeline(load_config(str(config)))
    try:
        result = pipeline.accept(list(messages))
        assert not result.errors, result.errors
    finally:
        pipeline.close()


def kill(config: Path, destination: str, reason: str) -> list[int]:
    """Lease every row of `destination` and make it a dead letter with `reason`."""
    box = SQLiteOutbox(config.parent / "outbox.db")
    try:
        items = box.lease(destination, 100, 60, "test", ordered=False)
        for item in items:
            box.dead(item.id, reason, "test")
        return [item.id for item in items]
    finally:
        box.close()


def queued_payloads(config: Path, destination: str) -> dict[str, dict[str, Any]]:
    box = SQLiteOutbox(config.parent / "outbox.db")
    try:
        leased = box.lease(destination, 100, 60, "check", ordered=False)
        return {i.message_id: i.payload for i in leased}
    finally:
        box.close()


def sent_properties(payload: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = payload["properties"]
    return properties


@pytest.fixture
def dead_with_old_mapping(tmp_path: Path) -> tuple[Path, list[int]]:
    """m1 and m2 accepted for `hook` while its filter let card_number through, both dead;
    then the config was fixed to deny card_number."""
    config = write_config(tmp_path, {"hook": hook()})
    accept(config, message(1), message(2))
    ids = kill(config, "hook", "HTTP 400: card_number is not allowed")
    write_config(tmp_path, {"hook": hook(filter={"event_attributes": {"deny": ["card_number"]}})})
    return config, ids


def test_replay_routes_through_the_current_filter_by_default(
    dead_with_old_mapping: tuple[Path, list[int]],
) -> None:
    config, _ = dead_with_old_mapping
    result = invoke("dead-letters", "replay", "-c", str(config), "--yes")
    assert result.exit_code == 0, result.output
    assert "replayed 2 dead letters (2 re-routed)" in result.stdout
    payloads = queued_payloads(config, "hook")
    assert set(payloads) == {"m1", "m2"}
    for payload in payloads.values():
        assert "card_number" not in sent_properties(payload)
        assert "total" in sent_properties(payload)


def test_as_stored_sends_the_old_payload(dead_with_old_mapping: tuple[Path, list[int]]) -> None:
    config, ids = dead_with_old_mapping
    result = invoke("dead-letters", "replay", "-c", str(config), "--as-stored", str(ids[0]))
    assert result.exit_code == 0, result.output
    assert "replayed 1 dead letters (1 as stored)" in result.stdout
    assert sent_properties(queued_payloads(config, "hook")["m1"])["card_number"] == "4111"


def test_dry_run_shows_what_would_be_sent_and_changes_nothing(
    dead_with_old_mapping: tuple[Path, list[int]],
) -> None:
    config, ids = dead_with_old_mapping
    result = invoke("dead-letters", "replay", "-c", str(config), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["replayed"] == 0
    assert [(r["id"], r["how"]) for r in report["rows"]] == [(i, "re-routed") for i in ids]
    assert "card_number" not in report["rows"][0]["payload"]["properties"]
    text = invoke("dead-letters", "replay", "-c", str(config), "--dry-run", "--reason", "400")
    assert "would replay 2 of 2 dead letters (dry run: nothing changed)" in text.stdout
    assert queued_payloads(config, "hook") == {}  # still dead


def test_filters_select_the_rows(dead_with_old_mapping: tuple[Path, list[int]]) -> None:
    config, _ = dead_with_old_mapping
    none = invoke("dead-letters", "replay", "-c", str(config), "--reason", "HTTP 503")
    assert "replayed 0 dead letters" in none.stdout
    later = invoke("dead-letters", "replay", "-c", str(config), "--since", "1h", "--until",
                   "2099-01-01", "--json")
    assert later.exit_code == 0, later.output
    assert json.loads(later.stdout)["replayed"] == 2
    bad = invoke("dead-letters", "replay", "-c", str(config), "--since", "yesterday")
    assert bad.exit_code == 2
    assert "'yesterday' is neither an ISO date or time" in bad.output


def test_an_unknown_id_is_an_error_naming_it(
    dead_with_old_mapping: tuple[Path, list[int]],
) -> None:
    config, ids = dead_with_old_mapping
    result = invoke("dead-letters", "replay", "-c", str(config), str(ids[0]), "999999")
    assert result.exit_code == 1
    assert "no dead letter with id 999999" in result.output
    assert queued_payloads(config, "hook") == {}  # nothing replayed, not even the known id


def test_replaying_everything_asks_first(dead_with_old_mapping: tuple[Path, list[int]]) -> None:
    config, _ = dead_with_old_mapping
    refused = invoke("dead-letters", "replay", "-c", str(config), input="n\n")
    assert refused.exit_code == 1
    assert "replay all 2 dead letters?" in refused.output
    assert queued_payloads(config, "hook") == {}
    agreed = invoke("dead-letters", "replay", "-c", str(config), input="y\n")
    assert agreed.exit_code == 0 and "replayed 2 dead letters" in agreed.stdout


def test_a_message_no_longer_kept_is_replayed_as_stored_and_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hook": hook()}, keep_messages=0)
    accept(config, message(1))
    kill(config, "hook", "HTTP 500")
    result = invoke("dead-letters", "replay", "-c", str(config), "-d", "hook")
    assert "replayed 1 dead letters (1 as stored: its message is no longer kept)" in (
        result.stdout)


def test_a_message_the_current_filter_drops_stays_dead(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hook": hook()})
    accept(config, message(1))
    kill(config, "hook", "HTTP 400")
    write_config(tmp_path, {"hook": hook(filter={"events": {"deny": ["Order Completed"]}})})
    result = invoke("dead-letters", "replay", "-c", str(config), "-d", "hook")
    assert result.exit_code == 0, result.output
    assert "replayed 0 dead letters" in result.stdout
    assert "the current filter does not send it to this destination" in result.stderr


def test_erasing_a_person_forgets_their_kept_messages(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hook": hook()})
    accept(config, message(1, "alice"), message(2, "bob"))
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        assert set(box.kept(["m1", "m2"])) == {"m1", "m2"}
    finally:
        box.close()
    erased = invoke("profiles", "delete", "-c", str(config), "alice", "--yes")
    assert erased.exit_code == 0, erased.output
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        assert set(box.kept(["m1", "m2"])) == {"m2"}
        # Nor is the profile_deleted event kept: it names the erased person.
        assert [m.message_id for m in box.kept_between(0, None)] == ["m2"]
    finally:
        box.close()


def test_kept_messages_past_the_retention_are_forgotten_by_cleanup(tmp_path: Path) -> None:
    import asyncio

    from crossdock.scheduler import Scheduler

    config = write_config(tmp_path, {"hook": hook()}, keep_messages="1h")
    accept(config, message(1))
    loaded = load_config(str(config))
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        now = [time.time() + 1800]
        scheduler = Scheduler(loaded, box, clock=lambda: now[0])
        asyncio.run(scheduler.cleanup())
        assert set(box.kept(["m1"])) == {"m1"}
        now[0] = time.time() + 3700
        asyncio.run(scheduler.cleanup())
        assert box.kept(["m1"]) == {}
    finally:
        box.close()


# -- backfill and re-delivery (item 2) ------------------------------------------------------


def accepted_at(config: Path, when: float, *messages: dict[str, Any]) -> None:
    """Accept messages as if at `when` (their kept copies say so)."""
    box = SQLiteOutbox(config.parent / "outbox.db")
    try:
        accept(config, *messages)
        ids = [m["messageId"] for m in messages]
        box.db.conn.execute(
            f"UPDATE outbox_messages SET accepted_at = ? "
            f"WHERE message_id IN ({','.join('?' * len(ids))})", [when, *ids])
    finally:
        box.close()


def test_backfill_routes_a_periods_kept_messages_to_a_new_destination(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hook": hook()}, keep_messages="90d")
    now = time.time()
    accepted_at(config, now - 20 * 86400, message(1))
    accepted_at(config, now - 10 * 86400, message(2), message(3))
    accepted_at(config, now - 86400, message(4))
    write_config(tmp_path, {"hook": hook(), "crm": hook(
        filter={"event_attributes": {"deny": ["card_number"]}})}, keep_messages="90d")
    result = invoke("backfill", "-c", str(config), "-d", "crm", "--since", "15d",
                    "--until", "2d", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["read"], report["queued"], report["already_there"]) == (2, 2, 0)
    assert "backfill crm: 2 messages read, 2 queued" in result.stderr  # progress
    payloads = queued_payloads(config, "crm")
    assert set(payloads) == {"m2", "m3"}
    assert "card_number" not in sent_properties(payloads["m2"])  # crm's own filter
    # The same period again: the checkpoint says it is done.
    again = invoke("backfill", "-c", str(config), "-d", "crm", "--since", "15d",
                   "--until", "2d", "--json")
    assert json.loads(again.stdout)["read"] == 0


def test_an_interrupted_backfill_continues_from_its_checkpoint(tmp_path: Path) -> None:
    from crossdock.replay import run_backfill

    config = write_config(tmp_path, {"hook": hook()})
    accept(config, *[message(n) for n in range(1, 8)])
    write_config(tmp_path, {"hook": hook(), "crm": hook()})
    loaded = load_config(str(config))
    box = SQLiteOutbox(tmp_path / "outbox.db")
    seen: list[int] = []

    def stop_after_two_chunks(report: Any) -> None:
        seen.append(report.read)
        if len(seen) == 2:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            run_backfill(loaded, box, "crm", 0, None, chunk=3, progress=stop_after_two_chunks)
        assert box.counts()["crm"].queued == 6
        second = run_backfill(loaded, box, "crm", 0, None, chunk=3)
        assert (second.read, second.queued) == (1, 1)
        assert second.resumed_after > 0
        assert box.counts()["crm"].queued == 7
    finally:
        box.close()


def test_backfill_skips_what_the_destination_already_has(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hook": hook()})
    accept(config, message(1), message(2))
    result = invoke("backfill", "-c", str(config), "-d", "hook", "--since", "1d", "--json")
    report = json.loads(result.stdout)
    assert (report["read"], report["queued"], report["already_there"]) == (2, 0, 2)
    typo = invoke("backfill", "-c", str(config), "-d", "hok", "--since", "1d")
    assert typo.exit_code == 2 and "no enabled destination 'hok'" in typo.output


def test_replay_delivered_re_delivers_to_one_destination(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hook": hook(), "other": hook()})
    accept(config, message(1), message(2))
    box = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        for name in ("hook", "other"):
            items = box.lease(name, 10, 60, "test", ordered=False)
            box.ack([i.id for i in items], "test")
    finally:
        box.close()
    write_config(tmp_path, {"hook": hook(filter={"event_attributes": {"deny": ["card_number"]}}),
                            "other": hook()})
    needs_d = invoke("dead-letters", "replay", "-c", str(config), "--delivered")
    assert needs_d.exit_code == 2 and "--delivered re-delivers to one destination" in (
        needs_d.output)
    result = invoke("dead-letters", "replay", "-c", str(config), "--delivered", "-d", "hook")
    assert result.exit_code == 0, result.output
    assert "replayed 2 delivered rows (2 re-routed)" in result.stdout
    payloads = queued_payloads(config, "hook")
    assert set(payloads) == {"m1", "m2"}
    assert "card_number" not in sent_properties(payloads["m1"])
    assert queued_payloads(config, "other") == {}
