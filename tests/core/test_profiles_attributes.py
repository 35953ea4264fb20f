"""Attribute rules as pure functions."""

from __future__ import annotations

from crossdock.config import AttributeRulesConfig
from crossdock.profiles.attributes import Stored, apply_rules, split_traits, value_type
from crossdock.profiles.consent import consent_changes

RULES = AttributeRulesConfig()


def test_value_types() -> None:
    assert value_type("x") == "string" and value_type(True) == "boolean"
    assert value_type("2024-01-02") == "date" and value_type("1990-05-17T00:00:00+0000") == "date"
    assert value_type(1.5) == "number" and value_type([1]) == "array"
    assert value_type({"a": 1}) == "object"


def test_none_removes_and_date_into_string_attribute_is_a_string() -> None:
    existing = {"a": Stored("string", "x"), "b": Stored("number", 1)}
    changes, problems = apply_rules(existing, {"a": "2024-01-01", "b": None}, RULES, custom=True)
    assert changes == {"a": Stored("string", "2024-01-01"), "b": None}
    assert problems == []


def test_system_attributes_ignore_prefix_and_limits() -> None:
    rules = AttributeRulesConfig(max_custom_per_type=1, reserved_prefixes=["e"])
    changes, problems = apply_rules({}, {"email": "a@b.c", "emailOptIn": True, "x": "1",
                                         "y": "2"}, rules, custom=False)
    assert set(changes) == {"email", "emailOptIn", "x", "y"} and problems == []


def test_split_traits_maps_segment_spellings() -> None:
    system, custom = split_traits({"first_name": "A", "birthday": "2000-01-01", "plan": 1})
    assert system == {"firstName": "A", "birthDate": "2000-01-01"} and custom == {"plan": 1}


def test_consent_changes() -> None:
    assert consent_changes({"consent": ["marketing"]}, {"smsOptIn": False}) == {
        "marketing": True, "sms": False}
    assert consent_changes({"consent": {"categoryPreferences": {"ads": False}}}, {}) == {
        "ads": False}
    assert consent_changes({}, {}) == {}


def test_mparticle_reserved_names_are_system_attributes_not_refused() -> None:
    from crossdock.profiles.attributes import split_traits

    system, custom = split_traits(
        {"$FirstName": "Ada", "$LastName": "Lovelace", "$Zip": "0150", "$City": "Oslo",
         "plan": "pro"}
    )
    assert system == {"firstName": "Ada", "lastName": "Lovelace"}
    assert custom == {"zip": "0150", "city": "Oslo", "plan": "pro"}


def test_a_name_with_nul_is_rejected_and_shown_escaped() -> None:
    changes, problems = apply_rules({}, {"ti\x00er": "gold", "plan": "pro"}, RULES, custom=True)
    assert changes == {"plan": Stored("string", "pro")}
    assert [(p.name, p.rule) for p in problems] == [("ti\\x00er", "name")]
    assert "attribute name must not contain NUL" in problems[0].detail


def test_an_email_with_nul_is_rejected_other_values_with_nul_are_kept() -> None:
    changes, problems = apply_rules({}, {"email": "a\x00@b.co", "firstName": "A\x00"}, RULES,
                                    custom=False)
    assert changes == {"firstName": Stored("string", "A\x00")}
    assert [(p.name, p.rule) for p in problems] == [("email", "identity")]
