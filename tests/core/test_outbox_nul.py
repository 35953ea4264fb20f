"""Text JSON allows but a database may not: the NUL character (a JSON string holding
\\u0000) and lone surrogates (\\ud800), both legal in a Segment message. On either engine
such a message is accepted with the rest of its batch, through Pipeline.accept, the collector
(/v1/track, /v1/batch) and `crossdock send`; NUL is stored and delivered exactly as sent, a
lone surrogate (not Unicode text, so no UTF-8 body can carry it) arrives as U+FFFD.

Before the outbox stored payloads as text (pg_006_payload_text), PostgreSQL's jsonb refused
NUL and the whole accept failed: a 500 from the collector, a traceback from `send`, and every
other message of the batch lost with it. Lone surrogates failed the same way on both engines.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from click.testing import CliRunner
from echo_destination import TYPES
from pg_helpers import PG_URL, pg_unreachable

from crossdock.cli import cli
from crossdock.collector import make_app
from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.loader import parse_config
from crossdock.outbox import NewRow, Outbox, open_outbox
from crossdock.outbox.payload_json import encode_payload
from crossdock.outbox.pg_schema import PG_MIGRATIONS, apply_migrations, temporary_schema
from crossdock.pipeline import Pipeline
from crossdock.profiles import make_profile_hook

T0 = 1_700_000_000.0
NUL = "\u0000"
WRITE_KEY = "wk-nul"


@pytest.fixture
def any_outbox(outbox_url: str) -> Iterator[Outbox]:
    outbox = open_outbox(outbox_url)
    yield outbox
    outbox.close()


def track(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": message_id, "userId": "u1", "event": "Signed Up",
            **fields}


#: one good message and one of each kind of awkward text, in one batch
MESSAGES: list[dict[str, Any]] = [
    track("good", properties={"plan": "pro"}),
    track("nul-value", properties={"note": f"a{NUL}b", "list": [NUL, f"{NUL}{NUL}"]}),
    track("nul-key", properties={f"k{NUL}": 1}),
    track("nul-event", event=f"Signed{NUL}Up"),
    track("surrogate", properties={"s": "x\ud800y"}),
]


def as_stored(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the outbox gives it back: the same, but U+FFFD for a lone surrogate."""
    return json.loads(json.dumps(message).replace("\\ud800", "\\ufffd"))


def _by_id(outbox: Outbox, destination: str) -> dict[str, dict[str, Any]]:
    # Unordered: a person's later messages are wanted at once, not one lease at a time.
    return {item.message_id: item.payload
            for item in outbox.lease(destination, 100, 30, "test", ordered=False)}


# -- the outbox itself ------------------------------------------------------------------


def test_payloads_with_nul_and_lone_surrogates_come_back_exactly(any_outbox: Outbox) -> None:
    payloads = {m["messageId"]: m for m in MESSAGES}
    assert any_outbox.enqueue([NewRow("a", k, v) for k, v in payloads.items()], now=T0) == 5
    assert _by_id(any_outbox, "a") == {k: as_stored(v) for k, v in payloads.items()}
    row = any_outbox.row("a", "nul-value")  # type: ignore[attr-defined]
    assert row["payload"]["properties"]["note"] == f"a{NUL}b"


def test_dead_letters_keep_a_nul_payload_and_a_nul_reason_is_shown_escaped(
    any_outbox: Outbox,
) -> None:
    any_outbox.enqueue([NewRow("a", "m1", {"v": NUL}), NewRow("a", "m2", {"v": 2})], now=T0)
    first, second = any_outbox.lease("a", 2, 30, "w1", now=T0)
    # A destination's body, or a value a plugin quotes, may hold NUL; PostgreSQL text cannot.
    any_outbox.retry(second.id, T0 + 10, f"HTTP 500: a{NUL}b", "w1")
    assert any_outbox.counts()["a"].last_error == "HTTP 500: a\\x00b"
    any_outbox.dead(first.id, f"rejected: bad value {NUL!r} {NUL}", "w1", now=T0 + 1)
    (letter,) = any_outbox.dead_letters("a")
    assert letter.payload == {"v": NUL}
    assert letter.reason == "rejected: bad value '\\x00' \\x00"
    assert any_outbox.counts()["a"].last_error == letter.reason


# -- Pipeline.accept, then delivery -----------------------------------------------------


async def test_the_pipeline_keeps_the_batch_and_the_destination_gets_nul_back(
    any_outbox: Outbox, make_loaded: Callable[..., LoadedConfig], route: Any, echo: Any,
) -> None:
    loaded = make_loaded(echo.url)
    pipeline = Pipeline(loaded, any_outbox, router=route)
    result = pipeline.accept(MESSAGES)
    assert (result.accepted, result.errors, result.rows) == (
        [m["messageId"] for m in MESSAGES], [], 5)

    report = await deliver_once(loaded, any_outbox)
    assert (report.delivered, report.retried, report.dead) == (5, 0, 0)
    sent = {entry["id"]: entry["payload"]["message"]
            for batch in echo.fake.batches for entry in batch}
    for message in map(as_stored, MESSAGES):
        got = sent[message["messageId"]]
        assert (got["event"], got["properties"]) == (
            message["event"], message.get("properties", {}))
    assert sent["nul-value"]["properties"]["note"] == f"a{NUL}b"
    assert sent["surrogate"]["properties"]["s"] == "x\ufffdy"


def test_the_profile_store_takes_a_trait_value_with_nul(
    any_outbox: Outbox, make_loaded: Callable[..., LoadedConfig], route: Any,
) -> None:
    loaded = make_loaded("http://127.0.0.1:9/hook")
    store = make_profile_hook(loaded, any_outbox)
    pipeline = Pipeline(loaded, any_outbox, store, router=route)
    identify = {"type": "identify", "messageId": "i1", "userId": "u1",
                "traits": {"plan": f"pro{NUL}", "tags": [NUL]}}
    result = pipeline.accept([track("t1"), identify])
    assert (result.accepted, result.errors) == (["t1", "i1"], [])
    assert _by_id(any_outbox, "echo")["i1"]["message"]["traits"] == identify["traits"]
    with any_outbox.transaction() as db:  # type: ignore[attr-defined]
        profile = store.show(db, "u1")  # type: ignore[union-attr]
    assert profile is not None
    assert profile["attributes"]["custom"]["plan"]["value"] == f"pro{NUL}"


# -- the collector ----------------------------------------------------------------------


def _collector_config(tmp_path: Path, url: str) -> LoadedConfig:
    raw = {
        "outbox": {"url": url},
        "collector": {"write_keys": [WRITE_KEY]},
        "destinations": {"echo": {"plugin": "echo",
                                  "settings": {"url": "http://127.0.0.1:9/hook"}}},
    }
    return parse_config(raw, base_dir=tmp_path, env={}, types=TYPES)


async def test_the_collector_answers_queued_and_keeps_every_message(
    tmp_path: Path, outbox_url: str, any_outbox: Outbox, route: Any,
) -> None:
    loaded = _collector_config(tmp_path, outbox_url)
    pipeline = Pipeline(loaded, any_outbox, make_profile_hook(loaded, any_outbox), router=route)
    app = make_app(loaded, pipeline)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
            "Content-Type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
        # The bytes a Segment library sends: the escape, as JSON has it.
        one = b'{"messageId": "c1", "userId": "u1", "event": "E", ' \
              b'"properties": {"a": "x\\u0000y"}}'
        r = await client.post("/v1/track", content=one, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["response"]["accepted"] == 1
        batch = {"batch": [track("c2"), track("c3", properties={"a": NUL}),
                           track("c4", properties={"b": "\ud800"})]}
        r = await client.post("/v1/batch", content=json.dumps(batch).encode(), headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["response"] == {"status": "queued", "accepted": 3, "duplicates": 0,
                                        "errors": []}
    stored = _by_id(any_outbox, "echo")
    assert sorted(stored) == ["c1", "c2", "c3", "c4"]
    assert stored["c1"]["message"]["properties"] == {"a": f"x{NUL}y"}
    assert stored["c3"]["message"]["properties"] == {"a": NUL}
    assert stored["c4"]["message"]["properties"] == {"b": "\ufffd"}


# -- crossdock send ---------------------------------------------------------------------


def test_crossdock_send_keeps_every_line(tmp_path: Path, outbox_url: str) -> None:
    config = tmp_path / "crossdock.yaml"
    config.write_text(yaml.safe_dump({
        "outbox": {"url": outbox_url},
        "collector": {"enabled": False},
        "destinations": {"hook": {"plugin": "webhook", "settings": {
            "url": "http://127.0.0.1:9/hook"}, "delivery": {"allow_private_network": True}}},
    }))
    lines = tmp_path / "messages.jsonl"
    lines.write_text("".join(json.dumps(m) + "\n" for m in MESSAGES))
    result = CliRunner().invoke(cli, ["send", "-c", str(config), "--quiet", str(lines)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "accepted 5 messages (5 outbox rows), 0 duplicates, 0 bad lines" in result.output
    outbox = open_outbox(outbox_url)
    try:
        stored = _by_id(outbox, "hook")
    finally:
        outbox.close()
    assert sorted(stored) == sorted(m["messageId"] for m in MESSAGES)
    text = encode_payload(stored["nul-value"])
    assert '"a\\u0000b"' in text and '["\\u0000","\\u0000\\u0000"]' in text
    assert "x\ufffdy" in encode_payload(stored["surrogate"])


# -- upgrading a PostgreSQL outbox whose payloads are jsonb -------------------------------


@pytest.mark.postgres
def test_pg_006_turns_jsonb_payloads_into_text_and_keeps_every_row() -> None:
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    # A database at pg_005 (payloads in jsonb), upgraded by opening it: pg_006 and every
    # later migration run over its rows (pg_018 counts the delivered ones).
    names = [fn.__name__ for fn in PG_MIGRATIONS]
    before = PG_MIGRATIONS[:names.index("pg_006_payload_text")]
    payloads = {
        "queued": {"b": 1, "a": [1.5, None, True], "big": 123456789012345678901234567890},
        "retrying": {"z": "Zoë", "nested": {"x": {"y": "\\u0000 as text, not NUL"}}},
        "leased": {"n": 1},
        "dead": {"why": "400"},
        "delivered": {"ok": True},
    }
    states = {"queued": ("queued", 0), "retrying": ("queued", 2), "leased": ("leased", 1),
              "dead": ("dead", 1), "delivered": ("delivered", 1)}
    with temporary_schema(PG_URL) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            apply_migrations(conn, before)
            for message_id, payload in payloads.items():
                state, attempts = states[message_id]
                conn.execute(
                    "INSERT INTO outbox (destination, message_id, payload, state, attempts, "
                    "next_attempt_at, created_at, updated_at) "
                    "VALUES ('a', %s, %s::jsonb, %s, %s, %s, %s, %s)",
                    [message_id, json.dumps(payload), state, attempts, T0, T0, T0])
        outbox = open_outbox(url)
        try:
            migrated = outbox.migrated  # type: ignore[attr-defined]
            assert migrated == names[len(before):] and migrated[0] == "pg_006_payload_text"
            counts = outbox.counts()["a"]
            assert (counts.queued, counts.retrying, counts.leased, counts.dead,
                    counts.delivered) == (2, 1, 1, 1, 1)
            for message_id, payload in payloads.items():
                assert outbox.row("a", message_id)["payload"] == payload  # type: ignore[attr-defined]
            # Due rows and the abandoned lease are leased again, payloads intact.
            leased = _by_id(outbox, "a")
            assert leased == {k: payloads[k] for k in ("queued", "retrying", "leased")}
            (letter,) = outbox.dead_letters("a")
            assert letter.payload == payloads["dead"]
            # New rows next to the converted ones.
            outbox.enqueue([NewRow("a", "new", {"v": NUL})], now=T0)
            assert _by_id(outbox, "a") == {"new": {"v": NUL}}
        finally:
            outbox.close()
