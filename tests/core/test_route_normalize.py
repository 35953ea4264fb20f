"""Key normalization, casing and value stringification, by example and by property."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from route_helpers import dest, msg, routed

from crossdock.kit import stringify
from crossdock.route.mapping_spec import KeysSpec
from crossdock.route.normalize import KeyNormalizer

SESSIONM = {"normalize": "non_alphanumeric_to_underscore", "strip_leading_underscores": True}
BOTH_ENDS = {**SESSIONM, "strip_trailing_underscores": True}


def norm(key: str, **spec: Any) -> str:
    return KeyNormalizer(KeysSpec(**spec))(key)


@pytest.mark.parametrize(("spec", "key", "expected"), [
    (SESSIONM, "First Name", "First_Name"),
    # SessionM's documented rule strips leading underscores only ...
    (SESSIONM, "First Name!", "First_Name_"),
    # ... trailing ones go too when the mapping asks.
    (BOTH_ENDS, "First Name!", "First_Name"),
    (SESSIONM, "__x", "x"),
    (SESSIONM, "$FirstName", "FirstName"),
    (SESSIONM, "a.b-c d", "a_b_c_d"),
    (SESSIONM, "a.b-c", "a_b_c"),
    ({"case": "lower"}, "UserID", "userid"),
    ({"case": "upper"}, "user_id", "USER_ID"),
    (SESSIONM, "a  b", "a__b"),  # runs are not collapsed
    (SESSIONM, "café", "caf_"),
    (SESSIONM, "!!!", ""),
    ({"normalize": "non_alphanumeric_to_underscore"}, "__x", "__x"),
    ({}, "First Name!", "First Name!"),
    ({"case": "lower"}, "First Name", "first name"),
    ({"case": "upper"}, "First Name", "FIRST NAME"),
    ({"case": "snake"}, "First Name", "first_name"),
    ({"case": "snake"}, "firstName", "first_name"),
    ({"case": "snake"}, "userID", "user_id"),
    ({"case": "snake"}, "HTTPServer", "http_server"),
    ({"case": "snake"}, "address2", "address2"),
    ({"case": "snake"}, "café au lait", "café_au_lait"),
    ({"case": "camel"}, "first_name", "firstName"),
    ({"case": "camel"}, "First Name", "firstName"),
    ({"case": "pascal"}, "first_name", "FirstName"),
    ({"case": "pascal"}, "user id", "UserId"),
    ({**SESSIONM, "case": "snake"}, "$FirstName", "first_name"),
    ({**SESSIONM, "case": "lower"}, "__Plan Tier!", "plan_tier_"),
])
def test_key_rules(spec: dict[str, Any], key: str, expected: str) -> None:
    assert norm(key, **spec) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("text", "text"),
    ("", ""),
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (-12, "-12"),
    (10**30, str(10**30)),
    (42.0, "42"),
    (-3.0, "-3"),
    (42.5, "42.5"),
    (1.0, "1"),
    (1.5, "1.5"),
    (0.1, "0.1"),
    (1e20, "1e+20"),
    (float("inf"), "inf"),
    ({"b": 1, "a": [1, "x"]}, '{"b":1,"a":[1,"x"]}'),
    ([1, 2.5, None, True], "[1,2.5,null,true]"),
    ({"é": "ü"}, '{"é":"ü"}'),
    (None, None),
])
def test_stringify_each_json_type(value: Any, expected: str | None) -> None:
    assert stringify(value) == expected


def test_stringified_values_reach_the_payload_and_nulls_are_dropped_and_counted() -> None:
    d = dest({"values": {"stringify": True}})
    payload = routed(msg(properties={"n": 3, "f": 2.0, "ok": True, "l": [1], "gone": None},
                         user_attributes={"age": 41, "nick": None}), d)
    assert payload["properties"] == {"n": "3", "f": "2", "ok": "true", "l": "[1]"}
    assert payload["traits"] == {"age": "41"}
    assert payload["dropped"] == {"event_attributes": 1, "user_attributes": 1}


def test_stringify_and_key_rules_apply_only_where_asked() -> None:
    d = dest({"values": {"stringify": True, "apply_to": ["traits"]},
              "keys": {"case": "upper", "apply_to": ["properties"]}})
    payload = routed(msg(properties={"n": 3}, user_attributes={"age": 41}), d)
    assert payload["properties"] == {"N": 3}
    assert payload["traits"] == {"age": "41"}


def test_keys_that_normalize_to_nothing_are_dropped_and_counted() -> None:
    d = dest({"keys": SESSIONM})
    payload = routed(msg(properties={"!!!": 1, "__": 2, "ok": 3},
                         user_attributes={"$": "x", "plan": "pro"}), d)
    assert payload["properties"] == {"ok": 3}
    assert payload["traits"] == {"plan": "pro"}
    assert payload["dropped"] == {"event_attributes": 2, "user_attributes": 1}


NORMALIZED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
CASES = ["none", "lower", "upper", "snake", "camel", "pascal"]


@given(key=st.text(max_size=40), case=st.sampled_from(CASES), trailing=st.booleans())
def test_normalized_keys_are_clean_or_empty_and_normalizing_twice_changes_nothing(
    key: str, case: str, trailing: bool
) -> None:
    normalizer = KeyNormalizer(KeysSpec(**SESSIONM, case=case,
                                        strip_trailing_underscores=trailing))
    once = normalizer(key)
    assert once == "" or NORMALIZED.match(once), once
    assert KeyNormalizer(normalizer.spec)(once) == once


@given(key=st.text(max_size=40), case=st.sampled_from(CASES))
def test_casing_alone_is_idempotent(key: str, case: str) -> None:
    normalizer = KeyNormalizer(KeysSpec(case=case))
    once = normalizer(key)
    assert KeyNormalizer(normalizer.spec)(once) == once
