"""Forwarding rules: only identified users, required consent and required attributes, the
mapping's defaults overridden by the operator's `rules:`."""

from __future__ import annotations

from typing import Any

import pytest
from route_helpers import dest, msg, routed, skipped

ANON = {"anonymousId": "a-1"}


@pytest.mark.parametrize(("shipped", "rules", "identities", "reason"), [
    ({}, {}, {"anonymousId": "a-1"}, None),
    ({}, {"only_identified": True}, {"anonymousId": "a-1"}, "rule: only identified users"),
    ({}, {"only_identified": True}, {"userId": "u-1"}, None),
    # The mapping's default applies when the operator says nothing ...
    ({"rules": {"only_identified": True}}, {}, {"anonymousId": "a-1"},
     "rule: only identified users"),
    # ... and the operator's explicit false overrides it.
    ({"rules": {"only_identified": True}}, {"only_identified": False},
     {"anonymousId": "a-1"}, None),
    ({"rules": {"only_identified": True}}, {}, {"userId": "u-1", "anonymousId": "a-1"}, None),
])
def test_only_identified(shipped: dict[str, Any], rules: dict[str, Any],
                         identities: dict[str, str], reason: str | None) -> None:
    d = dest(shipped, rules=rules)
    m = msg(userId=None, anonymousId="a-1", identities=identities)
    if reason is None:
        assert routed(m, d)["type"] == "track"
    else:
        assert skipped(m, d) == reason


@pytest.mark.parametrize(("shipped", "rules", "consent", "reason"), [
    ({}, {}, set(), None),
    ({}, {"require_consent": ["marketing"]}, set(), "rule: consent 'marketing' missing"),
    ({}, {"require_consent": ["marketing"]}, {"analytics"}, "rule: consent 'marketing' missing"),
    ({}, {"require_consent": ["marketing"]}, {"marketing", "analytics"}, None),
    ({}, {"require_consent": ["marketing", "ads"]}, {"marketing"}, "rule: consent 'ads' missing"),
    # The operator's purposes add to the mapping's: both are needed.
    ({"rules": {"require_consent": ["analytics"]}}, {"require_consent": ["marketing"]},
     {"marketing"}, "rule: consent 'analytics' missing"),
    ({"rules": {"require_consent": ["analytics"]}}, {"require_consent": ["marketing"]},
     {"marketing", "analytics"}, None),
    ({"rules": {"require_consent": ["analytics"]}}, {}, set(),
     "rule: consent 'analytics' missing"),
])
def test_require_consent(shipped: dict[str, Any], rules: dict[str, Any], consent: set[str],
                         reason: str | None) -> None:
    d = dest(shipped, rules=rules)
    m = msg(consent=consent)
    if reason is None:
        assert routed(m, d)["type"] == "track"
    else:
        assert skipped(m, d) == reason


@pytest.mark.parametrize(("shipped", "rules", "attributes", "identities", "reason"), [
    ({}, {}, {}, {"userId": "u-1"}, None),
    ({}, {"require_attributes": ["phone"]}, {}, {"userId": "u-1"},
     "rule: attribute 'phone' missing"),
    ({}, {"require_attributes": ["phone"]}, {"phone": ""}, {"userId": "u-1"},
     "rule: attribute 'phone' missing"),
    ({}, {"require_attributes": ["phone"]}, {"phone": "+19148440001"}, {"userId": "u-1"}, None),
    # an identity of that type is as good as an attribute
    ({}, {"require_attributes": ["phone"]}, {}, {"userId": "u-1", "phone": "+19148440001"},
     None),
    # the operator's names add to the mapping's (Twilio ships [phone])
    ({"rules": {"require_attributes": ["phone"]}}, {"require_attributes": ["email"]},
     {"phone": "+19148440001"}, {"userId": "u-1"}, "rule: attribute 'email' missing"),
])
def test_require_attributes(shipped: dict[str, Any], rules: dict[str, Any],
                            attributes: dict[str, Any], identities: dict[str, str],
                            reason: str | None) -> None:
    d = dest(shipped, rules=rules)
    m = msg(user_attributes=attributes, identities=identities)
    if reason is None:
        assert routed(m, d)["type"] == "track"
    else:
        assert skipped(m, d) == reason


def test_consent_comes_from_the_message_context_without_a_profile_store() -> None:
    d = dest(rules={"require_consent": ["marketing"]})
    granted = msg(context={"consent": {"categoryPreferences": {"marketing": True}}})
    refused = msg(context={"consent": {"categoryPreferences": {"marketing": False}}})
    assert routed(granted, d)["type"] == "track"
    assert skipped(refused, d) == "rule: consent 'marketing' missing"


def test_the_filter_is_judged_before_the_rules() -> None:
    d = dest(filter={"events": {"deny": ["Order Completed"]}},
             rules={"only_identified": True})
    m = msg(userId=None, anonymousId="a-1", identities={"anonymousId": "a-1"})
    assert skipped(m, d) == "filtered: event 'Order Completed' not allowed"


def test_a_mapping_naming_consent_purposes_gets_each_answer_in_the_payload() -> None:
    # A plugin setting a channel's subscribe status reads the same answer the rules read.
    d = dest({"consent": ["email", "sms", "email"]})
    assert routed(msg(consent={"email", "marketing"}), d)["consent"] == {
        "email": True, "sms": False}
    assert routed(msg(consent=set()), d)["consent"] == {"email": False, "sms": False}


def test_a_mapping_naming_no_consent_purpose_adds_nothing_to_the_payload() -> None:
    assert "consent" not in routed(msg(consent={"email"}), dest({}))


def test_the_operator_can_name_the_consent_purposes_a_plugin_reads() -> None:
    d = dest({"consent": ["email"]}, mapping={"consent": ["whatsapp"]})
    assert routed(msg(consent={"whatsapp"}), d)["consent"] == {"whatsapp": True}
