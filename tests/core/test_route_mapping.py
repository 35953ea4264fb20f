"""Mapping: reserved renames, key collisions, attribute limits, string length, the event-name
map, and the routed payload format as plugins read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from route_helpers import dest, load, msg, routed

from crossdock.cli import cli
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline
from crossdock.route.router import compiled, route

SESSIONM_KEYS = {"normalize": "non_alphanumeric_to_underscore",
                 "strip_leading_underscores": True}
RESERVED = {"$FirstName": "first_name", "$LastName": "last_name", "firstName": "first_name"}


def test_reserved_names_keep_their_exact_target_whatever_the_key_rules() -> None:
    d = dest({"keys": {**SESSIONM_KEYS, "case": "upper"}, "reserved": RESERVED})
    payload = routed(msg(user_attributes={"$FirstName": "Ann", "$LastName": "Lee",
                                          "$Plan": "pro"}), d)
    assert payload["traits"] == {"first_name": "Ann", "last_name": "Lee", "PLAN": "pro"}


def test_reserved_renames_apply_to_user_attributes_only() -> None:
    d = dest({"reserved": RESERVED})
    payload = routed(msg(properties={"$FirstName": "x"}, user_attributes={"firstName": "Ann"}),
                     d)
    assert payload["properties"] == {"$FirstName": "x"}
    assert payload["traits"] == {"first_name": "Ann"}


@pytest.mark.parametrize(("traits", "expected", "dropped"), [
    # A reserved rename beats a key that is already called like its target.
    ({"first_name": "raw", "$FirstName": "Ann"}, {"first_name": "Ann"}, 1),
    ({"$FirstName": "Ann", "first_name": "raw"}, {"first_name": "Ann"}, 1),
    # Two keys normalizing alike: the original name that sorts first (" " < "-") wins,
    # whatever the arrival order.
    ({"plan tier": "space", "plan-tier": "dash"}, {"plan_tier": "space"}, 1),
    ({"plan-tier": "dash", "plan tier": "space"}, {"plan_tier": "space"}, 1),
    ({"a": 1, "b": 2}, {"a": 1, "b": 2}, 0),
])
def test_collisions_are_resolved_deterministically_and_counted(
    traits: dict[str, Any], expected: dict[str, Any], dropped: int
) -> None:
    d = dest({"keys": SESSIONM_KEYS, "reserved": RESERVED})
    payload = routed(msg(user_attributes=traits), d)
    assert payload["traits"] == expected
    assert payload["dropped"]["user_attributes"] == dropped


def test_ten_event_attributes_at_most_the_first_ten_in_sorted_order() -> None:
    d = dest({"limits": {"event_attributes": 10}})
    names = [f"p{n:02d}" for n in range(15)]
    # Arrival order must not matter: the same ten are kept either way.
    for order in (names, list(reversed(names)), names[7:] + names[:7]):
        payload = routed(msg(properties={n: n for n in order}), d)
        assert sorted(payload["properties"]) == names[:10]
        assert list(payload["properties"]) == [n for n in order if n in names[:10]]
        assert payload["dropped"] == {"event_attributes": 5, "user_attributes": 0}


def test_limits_count_final_names_after_normalization_and_nulls() -> None:
    d = dest({"keys": SESSIONM_KEYS, "values": {"stringify": True},
              "limits": {"event_attributes": 2, "user_attributes": 1}})
    payload = routed(msg(properties={"_c": 1, "b!": 2, "a": None, "!!": 4, "d": 5},
                         user_attributes={"z": 1, "$FirstName": "Ann"}), d)
    # null "a" and empty "!!" go first; of c, b_, d the two first in sorted order stay.
    assert payload["properties"] == {"c": "1", "b_": "2"}
    assert payload["traits"] == {"FirstName": "Ann"}
    assert payload["dropped"] == {"event_attributes": 3, "user_attributes": 1}


def test_a_limit_of_zero_sends_no_attributes() -> None:
    payload = routed(msg(properties={"a": 1}), dest({"limits": {"event_attributes": 0}}))
    assert payload["properties"] == {} and payload["dropped"]["event_attributes"] == 1


def test_long_strings_are_cut_and_counted_apart_from_dropped_keys() -> None:
    d = dest({"limits": {"string_length": 5}, "values": {"stringify": True}})
    payload = routed(msg(properties={"s": "abcdefgh", "n": 1234567, "short": "abc"},
                         user_attributes={"name": "Annabelle"}), d)
    assert payload["properties"] == {"s": "abcde", "n": "12345", "short": "abc"}
    assert payload["traits"] == {"name": "Annab"}
    assert payload["truncated"] == 3
    assert payload["dropped"] == {"event_attributes": 0, "user_attributes": 0}


@pytest.mark.parametrize(("kind", "fields", "event"), [
    ("track", {"event": "Order Completed"}, "purchase"),
    ("track", {"event": "Cart Viewed"}, "Cart Viewed"),
    ("screen", {"name": "Home"}, "home_screen"),
    ("page", {}, "page"),
])
def test_event_name_map(kind: str, fields: dict[str, Any], event: str) -> None:
    d = dest({"event_names": {"Order Completed": "purchase", "Home": "home_screen"}})
    payload = routed(msg(kind, **fields), d)
    assert payload["event"] == event
    assert payload["name"] == fields.get("name")


def test_the_operator_overrides_the_shipped_mapping_key_by_key() -> None:
    shipped = {"event_names": {"Order Completed": "purchase"}, "limits": {"event_attributes": 1}}
    d = dest(shipped, mapping={"event_names": {"Signed Up": "signup"},
                               "limits": {"string_length": 2}})
    payload = routed(msg(properties={"a": "xyz", "b": "q"}), d)
    assert payload["event"] == "purchase"
    assert payload["properties"] == {"a": "xy"}
    assert routed(msg(event="Signed Up"), d)["event"] == "signup"


def test_the_routed_payload_format() -> None:
    m = msg(event="Order Completed", properties={"total": 42.5}, anonymousId="a-1",
            sessionId="s-1", context={"ip": "203.0.113.7", "traits": {"plan": "pro"}},
            profile_id="p-1")
    payload = routed(m, dest())
    assert payload == {
        "type": "track", "messageId": "m-1", "timestamp": "2024-05-01T12:00:00Z",
        "userId": "u-1", "anonymousId": "a-1", "sessionId": "s-1", "profileId": "p-1",
        "event": "Order Completed", "name": None, "properties": {"total": 42.5},
        "traits": {"plan": "pro"}, "identities": {"userId": "u-1", "anonymousId": "a-1"},
        "context": {"ip": "203.0.113.7", "traits": {"plan": "pro"}}, "rendered": {},
        "dropped": {"event_attributes": 0, "user_attributes": 0}, "truncated": 0,
    }


def test_identify_and_alias_payloads() -> None:
    identify = routed(msg("identify", traits={"plan": "pro"}), dest())
    assert identify["event"] is None and identify["properties"] == {}
    assert identify["traits"] == {"plan": "pro"}
    alias = routed(msg("alias", previousId="a-1"), dest())
    assert alias["previousId"] == "a-1" and alias["event"] is None


def test_a_destination_compiles_once() -> None:
    d = dest({"templates": {"text": "{{ event }}"}})
    first = compiled(d)
    route(msg(), d)
    assert compiled(d) is first
    assert compiled(dest()) is not first


def test_dropped_attributes_reach_crossdock_status(tmp_path: Path) -> None:
    """The route step's count of dropped keys is summed per destination in the outbox and
    shown by `crossdock status` (its "dropped attrs" column, `dropped_attributes` in --json)."""
    hook = {"plugin": "webhook",
            "settings": {"url": "http://127.0.0.1:9/in"},
            "delivery": {"allow_private_network": True}}
    config = tmp_path / "crossdock.yaml"
    config.write_text(yaml.safe_dump({
        "outbox": {"url": "sqlite:///outbox.db"}, "collector": {"enabled": False},
        "destinations": {"limited": {**hook, "mapping": {"limits": {"event_attributes": 10}}},
                         "unlimited": hook},
    }))
    twelve = {f"p{n:02d}": n for n in range(12)}
    lines = [{"type": "track", "userId": "u-1", "event": "Order Completed",
              "messageId": f"m-{i}", "properties": twelve} for i in range(2)]
    messages = tmp_path / "messages.jsonl"
    messages.write_text("".join(json.dumps(line) + "\n" for line in lines))
    runner = CliRunner()
    sent = runner.invoke(cli, ["send", "-c", str(config), "--quiet", str(messages)],
                         catch_exceptions=False)
    assert sent.exit_code == 0, sent.output
    status = runner.invoke(cli, ["status", "-c", str(config), "--json"], catch_exceptions=False)
    assert status.exit_code == 0, status.output
    counts = json.loads(status.stdout)
    assert counts["limited"]["dropped_attributes"] == 2 * 2
    assert counts["limited"]["queued"] == 2
    assert counts["unlimited"]["dropped_attributes"] == 0
    outbox = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        row = outbox.row("limited", "m-0")
        assert row is not None
        assert sorted(row["payload"]["properties"]) == sorted(twelve)[:10]
        assert row["payload"]["dropped"] == {"event_attributes": 2, "user_attributes": 0}
    finally:
        outbox.close()


def test_the_pipeline_counts_dropped_attributes_per_destination(tmp_path: Path) -> None:
    loaded = load({"limits": {"event_attributes": 10, "user_attributes": 1}},
                  base_dir=tmp_path)
    outbox = SQLiteOutbox(tmp_path / "c.db")
    try:
        result = Pipeline(loaded, outbox).accept([
            {"type": "track", "userId": "u-1", "event": "Paid", "messageId": "a",
             "properties": {f"p{n}": n for n in range(12)}},
            {"type": "track", "userId": "u-1", "event": "Paid", "messageId": "b",
             "properties": {"p": 1}, "context": {"traits": {"plan": "pro", "tier": 2}}},
        ])
        assert result.accepted == ["a", "b"]
        assert outbox.counts()["d"].dropped_attributes == 2 + 1
    finally:
        outbox.close()
