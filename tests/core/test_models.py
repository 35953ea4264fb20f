"""Message validation: every message type parses, and every error names the field and rule."""

from __future__ import annotations

from typing import Any

import pytest

from crossdock.errors import MessageError
from crossdock.models import consent_from_context, enrich_without_profile, parse_message


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "track", "event": "Order Completed", "userId": "u1", "properties": {"a": 1}},
        {"type": "identify", "anonymousId": "a1", "traits": {"email": "x@example.com"}},
        {"type": "page", "userId": "u1", "name": "Home"},
        {"type": "screen", "userId": "u1", "name": "Settings"},
        {"type": "alias", "userId": "u1", "previousId": "a1"},
    ],
)
def test_every_message_type_parses(raw: dict[str, Any]) -> None:
    msg = parse_message(raw)
    out = msg.to_json()
    assert out["type"] == raw["type"]
    assert out["messageId"]  # generated when absent
    assert out["timestamp"].endswith("Z") or "+" in out["timestamp"]


def test_numeric_user_id_becomes_a_string() -> None:
    assert parse_message({"type": "track", "event": "e", "userId": 42}).user_id == "42"


def test_an_empty_user_id_is_no_user_id() -> None:
    """RudderStack's JavaScript SDK sends "userId": "" before identify; an empty anonymousId
    stays an error (test_errors_name_the_field_and_the_rule)."""
    message = parse_message({"type": "page", "userId": "", "anonymousId": "a1"})
    assert message.user_id is None
    assert "userId" not in message.to_json()
    with pytest.raises(MessageError) as err:
        parse_message({"type": "page", "userId": ""})
    assert err.value.problems == ["userId or anonymousId: at least one is required"]


def test_message_id_and_timestamp_are_kept() -> None:
    msg = parse_message(
        {"type": "track", "event": "e", "userId": "u", "messageId": "m-1",
         "timestamp": "2026-01-02T03:04:05+01:00", "sessionId": "s1"}
    )
    out = msg.to_json()
    assert out["messageId"] == "m-1"
    assert out["sessionId"] == "s1"
    assert out["timestamp"].startswith("2026-01-02T03:04:05")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("not an object", "message: must be a JSON object, got str"),
        ({"event": "e", "userId": "u"}, "type: is required"),
        ({"type": "nope", "userId": "u"}, "type: must be one of"),
        ({"type": "track", "event": "e"}, "userId or anonymousId: at least one is required"),
        ({"type": "track", "event": "e", "userId": "x" * 101},
         "userId: String should have at most 100 characters"),
        ({"type": "track", "event": "e", "anonymousId": ""},
         "anonymousId: String should have at least 1 character"),
        ({"type": "track", "userId": "u"}, "event: is required"),
        ({"type": "identify", "userId": "u", "traits": [1]}, "traits: Input should be a valid"),
        ({"type": "alias", "userId": "u"}, "previousId: is required"),
        ({"type": "track", "event": "e", "userId": "a\x00b"},
         "userId: must not contain the NUL character (\\u0000)"),
        ({"type": "track", "event": "e", "userId": "u", "messageId": "m\x00"},
         "messageId: must not contain the NUL character"),
        ({"type": "track", "event": "e", "userId": "u", "timestamp": "yesterday"},
         "timestamp: Input should be a valid datetime"),
    ],
)
def test_errors_name_the_field_and_the_rule(raw: Any, problem: str) -> None:
    with pytest.raises(MessageError) as err:
        parse_message(raw)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_every_problem_is_reported_not_just_the_first() -> None:
    with pytest.raises(MessageError) as err:
        parse_message({"type": "track", "userId": "x" * 101, "properties": 3})
    fields = {p.split(":")[0] for p in err.value.problems}
    assert {"userId", "event", "properties"} <= fields


@pytest.mark.parametrize(
    ("context", "granted"),
    [
        ({"consent": {"categoryPreferences": {"marketing": True, "ads": False}}}, {"marketing"}),
        ({"consent": {"analytics": True}}, {"analytics"}),
        ({"consent": ["email", "sms"]}, {"email", "sms"}),
        ({}, set()),
    ],
)
def test_consent_from_context(context: dict[str, Any], granted: set[str]) -> None:
    assert consent_from_context(context) == granted


def test_enrichment_without_a_profile_store_uses_the_message() -> None:
    msg = parse_message(
        {"type": "identify", "userId": "u1", "anonymousId": "a1",
         "traits": {"email": "p@example.com", "plan": "pro"}}
    ).to_json()
    enriched = enrich_without_profile(msg)
    assert enriched.identified
    assert enriched.identities == {"userId": "u1", "anonymousId": "a1", "email": "p@example.com"}
    assert enriched.user_attributes["plan"] == "pro"
