"""`crossdock db upgrade` and `crossdock db copy`: SQLite to PostgreSQL and back, keeping
queued rows, retry state, dead letters, the dedup window, the profile store and the audience
members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crossdock.cli.db import db_group
from crossdock.dedup import Dedup
from crossdock.loader import parse_config
from crossdock.outbox import NewRow, open_outbox
from crossdock.pipeline import build_pipeline

T0 = 1_700_000_000.0


def test_upgrade_reports_what_it_applied_then_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    first = CliRunner().invoke(db_group, ["upgrade", "--url", url])
    assert first.exit_code == 0, first.output
    assert "m001_initial" in first.output
    again = CliRunner().invoke(db_group, ["upgrade", "--url", url])
    assert again.exit_code == 0, again.output
    assert "already up to date" in again.output


@pytest.mark.postgres
def test_copy_sqlite_to_postgres_and_back_keeps_what_is_still_to_do(
    tmp_path: Path, pg_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = open_outbox(sqlite_url)
    Dedup.migrate(old.db)  # type: ignore[attr-defined]
    with old.transaction() as db:  # type: ignore[attr-defined]
        Dedup().remember(db, "r:key:req-1", T0)
    # NUL is legal JSON; PostgreSQL's jsonb refused it, the text payload column keeps it
    old.enqueue([NewRow("a", f"m{i}", {"i": i, "note": "nul\x00byte"}) for i in range(6)],
                now=T0)
    m0, m1, m2, _m3 = old.lease("a", 4, 60, "old-daemon", now=T0)
    old.ack([m0.id], "old-daemon", now=T0)
    old.retry(m1.id, T0 + 300, "503", "old-daemon")
    old.dead(m2.id, "400: bad", "old-daemon", now=T0)
    # m3 stays leased by a daemon that was stopped; m4, m5 queued
    old.close()

    upgraded = CliRunner().invoke(db_group, ["upgrade", "--url", pg_url])
    assert upgraded.exit_code == 0, upgraded.output
    assert "pg_001_initial" in upgraded.output
    assert "***" not in upgraded.output  # no password in this URL to hide

    copied = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
    assert copied.exit_code == 0, copied.output
    assert "copied 5 rows" in copied.output
    assert "1 leased rows queued again" in copied.output
    assert "1 dedup keys; figures of 1 destinations" in copied.output

    new = open_outbox(pg_url)
    try:
        c = new.counts()["a"]
        # m3's attempt is kept: its stopped daemon may have sent it before the copy. m0's
        # delivered row stays behind, counted: status does not start from zero
        assert (c.queued, c.retrying, c.dead, c.delivered, c.leased) == (4, 2, 1, 1, 0)
        assert c.last_error == "400: bad"
        retried = new.row("a", "m1")  # type: ignore[attr-defined]
        assert (retried["attempts"], retried["next_attempt_at"], retried["last_error"]) == (
            1, T0 + 300, "503")
        assert [d.reason for d in new.dead_letters()] == ["400: bad"]
        with new.transaction() as tx:  # type: ignore[attr-defined]
            assert Dedup().seen(tx, "r:key:req-1", T0 + 60)
        fresh = new.lease("a", 10, 1e10, "new-daemon", now=T0 + 1)
        assert [i.message_id for i in fresh] == ["m4", "m5"]
        assert [i.payload for i in fresh] == [{"i": 4, "note": "nul\x00byte"},
                                             {"i": 5, "note": "nul\x00byte"}]
        # m3, leased when copied, is due at the time of the copy (now, not T0)
        assert [i.message_id for i in new.lease("a", 10, 60, "new-daemon")] == ["m1", "m3"]
    finally:
        new.close()

    again = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
    assert again.exit_code == 0, again.output
    assert "copied 0 rows" in again.output
    assert "5 already in the target" in again.output
    assert "figures of 0 destinations" in again.output
    again_box = open_outbox(pg_url)
    try:
        assert again_box.counts()["a"].delivered == 1  # not counted twice
    finally:
        again_box.close()

    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    back = CliRunner().invoke(db_group, ["copy", "--from", pg_url, "--to", back_url,
                                         "--include-delivered"])
    assert back.exit_code == 0, back.output
    restored = open_outbox(back_url)
    try:
        c = restored.counts()["a"]
        # m1, m3-m5, leased in PostgreSQL above, queued again
        assert (c.queued, c.dead, c.leased, c.delivered) == (4, 1, 0, 1)
    finally:
        restored.close()


def test_copy_refuses_the_same_outbox_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    result = CliRunner().invoke(db_group, ["copy", "--from", url, "--to", url])
    assert result.exit_code == 2
    assert "--from and --to are the same outbox" in result.output


HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}


def _world(url: str, base: Path) -> tuple[Any, Any]:
    """(pipeline, store) on `url` with an audience `high_value` fed on change."""
    loaded = parse_config({
        "outbox": {"url": url},
        "destinations": {"fb": HOOK},
        "audiences": {"high_value": {"condition": "lifetime_value > 500",
                                     "destinations": ["fb"]}},
    }, base_dir=base, env={})
    pipeline = build_pipeline(loaded)
    return pipeline, pipeline.profiles


def _people(url: str, base: Path) -> dict[str, Any]:
    """Everything the profile store and the audience hold, by userId."""
    pipeline, store = _world(url, base)
    try:
        with pipeline.outbox.transaction() as db:
            found = {}
            for (user,) in db.execute("SELECT user_id FROM profiles WHERE user_id IS NOT NULL "
                                      "ORDER BY user_id").fetchall():
                shown = store.show(db, user)
                found[user] = {k: shown[k] for k in ("attributes", "identities", "consent",
                                                     "merges", "sessions", "messages")}
            found["_members"] = sorted(r[0] for r in db.execute(
                "SELECT p.user_id FROM audience_members m JOIN profiles p "
                "ON p.id = m.profile_id").fetchall())
            found["_changes"] = [tuple(r) for r in db.execute(
                "SELECT id, kind FROM audience_changes ORDER BY id").fetchall()]
            found["_stats"] = store.stats(db)
        return found
    finally:
        pipeline.close()


@pytest.mark.postgres
def test_copy_brings_the_profile_store_and_audience_members(tmp_path: Path,
                                                            pg_url: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'old.db'}"
    pipeline, _ = _world(sqlite_url, tmp_path)
    result = pipeline.accept([
        {"type": "page", "anonymousId": "laptop", "sessionId": "s1"},
        {"type": "identify", "anonymousId": "laptop", "userId": "ann",
         "traits": {"email": "ann@example.com", "lifetime_value": 900, "emailOptIn": True}},
        {"type": "identify", "userId": "bob", "traits": {"lifetime_value": 700}},
        {"type": "identify", "userId": "bob", "traits": {"lifetime_value": 10}},
        {"type": "identify", "userId": "cy", "traits": {"lifetime_value": 100, "age": 3}},
        {"type": "identify", "userId": "cy", "traits": {"age": "three"}},  # rejected
    ])
    assert not result.errors
    pipeline.close()
    before = _people(sqlite_url, tmp_path)
    assert before["_members"] == ["ann"] and len(before["_changes"]) == 3

    copied = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
    assert copied.exit_code == 0, copied.output
    assert "3 profiles, 1 audience members" in copied.output
    assert _people(pg_url, tmp_path) == before

    # Run again (say, after an interruption): nothing new, nothing refused.
    again = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
    assert again.exit_code == 0, again.output
    assert "(0 profile and audience rows)" in again.output
    assert _people(pg_url, tmp_path) == before

    # Life goes on in PostgreSQL: ann leaves with a change numbered after the copied ones
    # (its messageId names it), and the dedup window and sessions carry on.
    pipeline, _ = _world(pg_url, tmp_path)
    assert pipeline.accept([{"type": "identify", "userId": "ann",
                             "traits": {"lifetime_value": 1}}]).rows == 2
    pipeline.close()
    after = _people(pg_url, tmp_path)
    assert after["_members"] == [] and after["_changes"][-1] == (4, "exited")

    # The target now has profiles of its own that the source lacks... after a new person:
    pipeline, _ = _world(pg_url, tmp_path)
    pipeline.accept([{"type": "identify", "userId": "dee", "traits": {"lifetime_value": 3}}])
    pipeline.close()
    refused = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
    assert refused.exit_code == 1
    assert "already has a profile store of its own" in refused.output
    assert "--replace-profiles" in refused.output
    assert "dee" in _people(pg_url, tmp_path)  # nothing was touched

    skipped = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url,
                                            "--skip-profiles"])
    assert skipped.exit_code == 0, skipped.output
    assert "profiles" not in skipped.output

    replaced = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url,
                                             "--replace-profiles"])
    assert replaced.exit_code == 0, replaced.output
    assert _people(pg_url, tmp_path) == before

    # And back to SQLite, into a fresh file.
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    back = CliRunner().invoke(db_group, ["copy", "--from", pg_url, "--to", back_url])
    assert back.exit_code == 0, back.output
    assert _people(back_url, tmp_path) == before


def test_copy_refuses_a_source_file_that_does_not_exist(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A mistyped --from (three slashes before an absolute path make it relative) used to
    # open, i.e. create, an empty SQLite file and report "copied 0 rows" as a success.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(db_group, ["copy", "--from", "sqlite:///var/lib/x/crossdock.db",
                                           "--to", f"sqlite:///{tmp_path / 'new.db'}"])
    assert result.exit_code == 2, result.output
    assert "--from" in result.output and "no such file" in result.output
    assert str(tmp_path / "var/lib/x/crossdock.db") in result.output
    assert "sqlite:////var/lib/x/crossdock.db" in result.output  # the absolute spelling
    result = CliRunner().invoke(db_group, ["copy", "--from", "sqlite:///old.db",
                                           "--to", f"sqlite:///{tmp_path / 'new.db'}"])
    assert result.exit_code == 2 and "no such file" in result.output, result.output
    assert not (tmp_path / "old.db").exists() and not (tmp_path / "new.db").exists()


@pytest.mark.postgres
def test_copy_wakes_the_daemons_listening_on_the_target(tmp_path: Path, pg_url: str) -> None:
    # The copy's NOTIFY went to the channel of before per-schema channels (crossdock_outbox),
    # which no daemon listens on any more.
    import psycopg

    sqlite_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = open_outbox(sqlite_url)
    old.enqueue([NewRow("a", "m1", {"i": 1})], now=T0)
    old.close()
    target = open_outbox(pg_url)
    try:
        statement = target.listen_statement  # type: ignore[attr-defined]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(statement)
            copied = CliRunner().invoke(db_group, ["copy", "--from", sqlite_url, "--to", pg_url])
            assert copied.exit_code == 0, copied.output
            heard = [n.payload for n in conn.notifies(timeout=2, stop_after=1)]
    finally:
        target.close()
    assert heard == ["a"]
