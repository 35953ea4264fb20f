"""The shape every message must have (crossdock.json_shape): nesting depth and finite numbers,
named by the path where the rule breaks; JSON text of any depth parsed without RecursionError."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossdock.errors import MessageError
from crossdock.json_shape import DEPTH_RULE, FINITE_RULE, MAX_DEPTH, loads, shape_problems
from crossdock.models import parse_message


def nested(levels: int, leaf: Any = 1) -> Any:
    """`leaf` inside `levels` objects {"a": ...}."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def track(**properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u-1", "event": "E", "properties": properties}


def test_a_message_may_nest_exactly_the_limit() -> None:
    # The message is level 1 and `properties` level 2: MAX_DEPTH - 2 more objects fit.
    assert shape_problems(track(deep=nested(MAX_DEPTH - 2))) == []
    parse_message(track(deep=nested(MAX_DEPTH - 2)))
    (problem,) = shape_problems(track(deep=nested(MAX_DEPTH - 1)))
    assert problem.endswith(f": {DEPTH_RULE}")
    # An empty object or array is a level too.
    assert shape_problems(track(deep=nested(MAX_DEPTH - 2, []))) == [
        f"properties.deep.a.a.a.a.…{MAX_DEPTH - 8} more….a.a: {DEPTH_RULE}"]


@pytest.mark.parametrize("levels", [260, 1_000, 100_000])
def test_any_depth_is_refused_by_its_path_not_by_a_crash(levels: int) -> None:
    # 260 levels: pydantic could not serialize it (a 500, the batch lost); 1,000: json.loads
    # and the checks raised RecursionError.
    deep = '{"a": ' * levels + "1" + "}" * levels
    text = '{"type": "track", "userId": "u-1", "event": "E", "properties": {"deep": ' + deep + "}}"
    message = loads(text)
    with pytest.raises(MessageError) as refused:
        parse_message(message)
    assert refused.value.problems == [
        f"properties.deep.a.a.a.a.…{MAX_DEPTH - 8} more….a.a: {DEPTH_RULE}"]


def test_arrays_are_levels_and_indexes_are_in_the_path() -> None:
    value: Any = "x"
    for _ in range(MAX_DEPTH):
        value = [value]
    (problem,) = shape_problems({"context": {"list": [0, value]}})
    assert problem.startswith("context.list.1.0.0.0.")
    assert problem.endswith(f"0.0: {DEPTH_RULE}")


@pytest.mark.parametrize(("text", "got"), [
    ('{"price": 1e400}', "inf"), ('{"price": -1e400}', "-inf"), ('{"price": NaN}', "nan"),
    ('{"price": Infinity}', "inf"), ('{"price": -Infinity}', "-inf"),
])
def test_numbers_that_are_not_finite_are_refused_by_name(text: str, got: str) -> None:
    # 1e400 overflowed to infinity and was stored as null without a word.
    message = {**track(), "properties": {"cart": [{"item": 1}, loads(text)]}}
    with pytest.raises(MessageError) as refused:
        parse_message(message)
    assert refused.value.problems == [f"properties.cart.1.price: {FINITE_RULE}, got {got}"]


def test_every_problem_is_named_and_good_values_pass() -> None:
    message = {**track(ok=1.5, big=10**30, flag=True, none=None),
               "context": {"traits": {"ltv": math.inf}}, "traits": {"a": [math.nan]}}
    assert shape_problems(message) == [
        f"context.traits.ltv: {FINITE_RULE}, got inf", f"traits.a.0: {FINITE_RULE}, got nan"]
    assert shape_problems(track(ok=1.5, big=10**30, flag=True, none=None, s="NaN")) == []


def test_what_the_python_api_may_hand_in_is_checked_too() -> None:
    # Mapping subclasses and tuples nest like objects and arrays; a cycle is endless nesting.
    assert shape_problems(track(deep=OrderedDict(a=nested(MAX_DEPTH)))) != []
    assert shape_problems(track(t=(1.0, float("nan")))) == [
        f"properties.t.1: {FINITE_RULE}, got nan"]
    cycle: dict[str, Any] = {}
    cycle["again"] = cycle
    (problem,) = shape_problems(track(cycle=cycle))
    assert problem.startswith("properties.cycle.again.again.")


def test_loads_reads_any_depth_and_keeps_the_rest_of_the_document() -> None:
    deep = '{"a": ' * 50_000 + '"[{\\"}]"' + "}" * 50_000
    text = '{"batch": [' + deep + ', {"ok": "[{ \\" }]"}, [[]]]}'
    document = loads(text)
    assert document["batch"][1:] == [{"ok": '[{ " }]'}, [[]]]
    assert shape_problems(document["batch"][0]) != []
    assert loads(text.encode("utf-16")) == document
    with pytest.raises(json.JSONDecodeError):
        loads('{"a": ' * 5_000 + "1")  # never closed


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES, as_bytes=st.booleans(), ascii_only=st.booleans())
def test_loads_reads_every_document_as_the_standard_parser_does(
        value: Any, as_bytes: bool, ascii_only: bool) -> None:
    # orjson reads first (crossdock.json_shape): the same values AND the same types (an
    # integer of any size stays an exact int, never a float), lone surrogates included.
    text = json.dumps(value, ensure_ascii=ascii_only)
    document = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        expected = json.loads(document)
    except UnicodeDecodeError:
        return  # a lone surrogate written raw is not UTF-8: both refuse it
    got = loads(document)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # types too: 1 and 1.0 differ here


@pytest.mark.parametrize("text", [
    '{"id": 123456789012345678901234567890}', '{"id": -9223372036854775809}',
    '{"id": 18446744073709551616}', '[1e400, NaN, -Infinity]', '\ufeff{"a": 1}',
    '{"a": "\\ud800"}'])
def test_loads_keeps_what_orjson_would_read_otherwise(text: str) -> None:
    got = loads(text.encode("utf-8"))
    expected = json.loads(text.encode("utf-8"))
    assert json.dumps(got) == json.dumps(expected)
    assert [type(v) for v in (got.values() if isinstance(got, dict) else got)] == \
        [type(v) for v in (expected.values() if isinstance(expected, dict) else expected)]


def test_loads_names_where_malformed_text_stops_being_json() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        loads(b'{"a": 1,\n "b": }')
    assert (caught.value.lineno, caught.value.colno) == (2, 7)
