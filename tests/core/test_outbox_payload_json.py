"""The outbox's payload JSON: orjson where it agrees with the standard library, `json` where
it would not (exact big integers, text orjson rejects, types only `json` reports)."""

from __future__ import annotations

import json
import math

import pytest

from crossdock.outbox.payload_json import decode_payloads, encode_payload


def test_encoding_is_compact_json_keeping_non_ascii() -> None:
    text = encode_payload({"name": "Zoë", "n": [1, 2.5, None, True], "t": (1, 2)})
    assert text == '{"name":"Zoë","n":[1,2.5,null,true],"t":[1,2]}'


def test_non_string_keys_become_strings_as_json_writes_them() -> None:
    assert json.loads(encode_payload({1: "a", None: "b"})) == {"1": "a", "null": "b"}


def test_nan_and_infinity_become_null_so_the_text_stays_valid_json() -> None:
    text = encode_payload({"a": math.nan, "b": math.inf})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": None}


@pytest.mark.parametrize("big", [2**70 + 1, 2**64, -(2**63) - 1, -9999999999999999999,
                                 2**64 - 1, -(2**63)])
def test_integers_beyond_64_bits_are_written_and_read_back_exactly(big: int) -> None:
    text = encode_payload({"big": big})
    assert text == f'{{"big":{big}}}'
    decoded = decode_payloads([text, '{"x":1}'])
    assert decoded == [{"big": big}, {"x": 1}]
    assert type(decoded[0]["big"]) is int


def test_a_lone_surrogate_becomes_u_fffd_so_the_text_is_utf8() -> None:
    # Legal in a JSON string ("\\ud800") but not Unicode: no database takes it raw, and
    # plugins, which write UTF-8 bodies, could never send it.
    text = encode_payload({"s": "a\ud800b", "t": "\udfff", "zoë": 2**70})
    assert text == '{"s":"a\ufffdb","t":"\ufffd","zoë":1180591620717411303424}'
    text.encode("utf-8")
    assert decode_payloads([text]) == [{"s": "a\ufffdb", "t": "\ufffd", "zoë": 2**70}]


def test_nul_is_written_as_an_escape_and_read_back_as_nul() -> None:
    payload = {"a\u0000": "x\u0000y", "n": ["\u0000"]}
    text = encode_payload(payload)
    assert "\x00" not in text and text.count("\\u0000") == 3
    assert decode_payloads([text]) == [payload]


def test_unknown_types_raise_the_standard_library_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_payload({"x": object()})


def test_a_nan_written_by_an_older_version_still_decodes() -> None:
    decoded = decode_payloads(['{"a":NaN}', '{"b":2}'])
    assert math.isnan(decoded[0]["a"]) and decoded[1] == {"b": 2}


def test_a_malformed_row_is_reported_alone() -> None:
    decoded = decode_payloads(['{"a":1}', "{not json", "[1,2]"])
    assert decoded[0] == {"a": 1}
    assert isinstance(decoded[1], ValueError)
    assert decoded[2] == [1, 2]


def test_a_row_holding_two_values_is_malformed_not_two_rows() -> None:
    decoded = decode_payloads(['{"a":1},{"b":2}', '{"c":3}'])
    assert isinstance(decoded[0], ValueError) and decoded[1] == {"c": 3}


def test_nothing_to_decode() -> None:
    assert decode_payloads([]) == []


@pytest.mark.parametrize("texts", [
    ['{"a":1}', '{"big":18446744073709551616}', '{"zoë":"\u0000"}'],
    ['{"a":NaN}', '{"b":2}'],
    ['{"a":1}', "{not json", "[1,2]"],
])
def test_the_utf8_bytes_of_payloads_decode_as_their_text_does(texts: list[str]) -> None:
    def same(value: object) -> object:  # errors compare by type, NaN by its text
        return type(value) if isinstance(value, ValueError) else repr(value)

    assert [same(v) for v in decode_payloads([t.encode() for t in texts])] == [
        same(v) for v in decode_payloads(texts)]


def test_bytes_that_are_not_utf8_are_a_malformed_row_alone() -> None:
    decoded = decode_payloads([b'{"a":1}', b'{"b":"\xff"}'])
    assert decoded[0] == {"a": 1} and isinstance(decoded[1], ValueError)
