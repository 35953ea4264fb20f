"""The plugin author's kit in crossdock.destination: the encoder and request builder, the
payload and reply readers, the manifest, typed settings, the one error vocabulary, and what
the engine does with an ItemRejected a plugin lets out."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from crossdock import kit
from crossdock.delivery import deliver_once
from crossdock.destination import (
    ALL_MESSAGE_TYPES,
    DEFAULT_MESSAGE_TYPES,
    ContactOptions,
    Destination,
    FieldRefused,
    ItemRejected,
    Manifest,
    OutboxItem,
    Planned,
    PlannedRequest,
    Rejected,
    Secret,
    basic_auth,
    chunks,
    first_value,
    is_sha256_hex,
    json_content,
    json_number,
    json_request,
    per_item,
    plan_each,
    response_json,
    sha256_hex,
    stringify,
    stringify_values,
    truncate,
)
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.phones import PhoneError
from crossdock.testing.clock import ManualClock
from crossdock.testing.payloads import outbox_item, routed_payload

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
def test_json_content_is_exactly_what_json_dumps_writes(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert json_content(value) == expected.encode()
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    assert json_content(value, sort_keys=True) == expected.encode()


@pytest.mark.parametrize("value", [1e16, 1e-05, 0.00001234, 2**70, -(2**65), {1: "a"},
                                   math.inf, [math.nan], "ünï"])
def test_json_content_takes_the_standard_library_where_orjson_would_differ(value: Any) -> None:
    assert json_content(value) == json.dumps(value, separators=(",", ":"),
                                             ensure_ascii=False).encode()


def test_json_request_is_the_request_httpx_builds() -> None:
    body = {"event": "Order Completed", "total": 42.5}
    ours = json_request("PUT", "https://api.example/v1/x", body,
                        headers={"authorization": "Bearer t"}, params={"b": "2"})
    theirs = httpx.Request("PUT", "https://api.example/v1/x", params={"b": "2"},
                           headers={"content-type": "application/json",
                                    "authorization": "Bearer t"},
                           content=json_content(body))
    assert (ours.method, ours.url, ours.content) == (theirs.method, theirs.url, theirs.content)
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    signed = json_request("POST", "https://api.example/?a=1", b'{"already":"encoded"}',
                          params={"b": "2"})
    assert signed.content == b'{"already":"encoded"}'
    assert str(signed.url) == "https://api.example/?a=1&b=2"  # added to the URL's query
    # Requests to one URL carry one httpx.URL: the transport keeps aiohttp's form by it.
    again = json_request("PUT", "https://api.example/v1/x", body)
    assert again.url is json_request("POST", "https://api.example/v1/x", {}).url
    assert again.url == theirs.url.copy_with(query=None)


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"code": 7}', {"code": 7}),
    (b"", None),
    (b"<html>502 Bad Gateway</html>", None),
    (b'{"code": ', None),
    (b"\xff\xfe{}", None),
    (b"[1, 2]", None),
    (b"null", None),
])
def test_response_json_is_the_object_or_none(content: bytes, expected: Any) -> None:
    assert response_json(httpx.Response(200, content=content)) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3), (2.5, 2.5), (0, 0), (-1.0, -1.0),
    (True, None), (False, None), ("3", None), (None, None), (math.inf, None),
    (math.nan, None), ([1], None),
])
def test_json_number_is_a_number_and_never_a_bool(value: Any, expected: Any) -> None:
    assert json_number(value) == expected


def test_basic_auth_is_rfc_7617() -> None:
    # RFC 7617, section 2: Aladdin / open sesame
    assert basic_auth("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def test_chunks_keep_order_and_size() -> None:
    assert list(chunks([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(chunks([], 3)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(chunks([1], 0))


def test_first_value_takes_the_first_present_path() -> None:
    payload = {"traits": {"email": "  ", "phone": None}, "identities": {"email": "a@b.c"},
               "userId": "u-1", "context": {"traits": {"plan": 0}}}
    assert first_value(payload, "traits.email", "identities.email") == "a@b.c"
    assert first_value(payload, "traits.phone", "userId") == "u-1"
    assert first_value(payload, "context.traits.plan") == 0  # zero and False are values
    assert first_value(payload, "traits.email.x", "nowhere", "traits") == payload["traits"]
    assert first_value(payload, "missing") is None


def test_stringify_sorts_keys_only_when_asked() -> None:
    assert stringify({"b": 1, "a": [True, None]}) == '{"b":1,"a":[true,null]}'
    assert stringify({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}'
    assert (stringify(42.0), stringify(0.1), stringify(None)) == ("42", "0.1", None)


class AcmeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr
    channel: str = "main"


class Acme(Destination[AcmeSettings]):
    manifest = Manifest(name="acme", description="test", docs_url="https://acme.example/docs",
                        batch_size=50, max_batch_size=200, rate_limit=5.0, concurrency=2,
                        auth="api_key")


def test_the_manifest_sets_what_the_engine_reads_and_the_settings_model() -> None:
    assert Acme.settings_model is AcmeSettings
    assert (Acme.plugin_name, Acme.recommended_batch_size, Acme.max_batch_size,
            Acme.default_rate_limit, Acme.default_concurrency) == ("acme", 50, 200, 5.0, 2)
    assert Acme.message_types == DEFAULT_MESSAGE_TYPES
    assert Acme.describe() is Acme.manifest
    settings = AcmeSettings(api_key=SecretStr("k"))
    assert Acme(settings).settings.channel == "main"


def test_the_recommended_batch_size_is_the_default_and_the_maximum_the_limit(
        tmp_path: Path) -> None:
    def batch(delivery: dict[str, Any]) -> int:
        raw = {"destinations": {"a": {"plugin": "acme", "settings": {"api_key": "k"},
                                      "delivery": delivery}}}
        return parse_config(raw, base_dir=tmp_path, env={},
                            types={"acme": Acme}).destination("a").batch_size
    assert (batch({}), batch({"batch_size": 120}), batch({"batch_size": 7})) == (50, 120, 7)


class Legacy(Destination):
    """A plugin written before manifests: class attributes only."""

    plugin_name = "legacy"
    settings_model = AcmeSettings
    max_batch_size = 20
    message_types = ALL_MESSAGE_TYPES


def test_a_plugin_without_a_manifest_is_described_from_its_attributes() -> None:
    manifest = Legacy.describe()
    assert (manifest.name, manifest.batch_size, manifest.largest_batch, manifest.docs_url) == (
        "legacy", 20, 20, "")
    assert manifest.message_types == ALL_MESSAGE_TYPES


@pytest.mark.parametrize(("fields", "problem"), [
    ({"name": "Acme"}, "name 'Acme': lower-case letters"),
    ({"description": " "}, "description: must not be empty"),
    ({"message_types": frozenset({"track", "purchase"})}, "not purchase"),
    ({"batch_size": 10, "max_batch_size": 5}, r"batch_size \(10\) <= max_batch_size \(5\)"),
    ({"rate_limit": 0}, "rate_limit: requests per second"),
    ({"concurrency": 0}, "concurrency: at least 1"),
])
def test_a_wrong_manifest_is_refused_by_field(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=f"invalid manifest: .*{problem}"):
        Manifest(**{"name": "acme", "description": "d", "docs_url": "", **fields})


def test_unknown_settings_are_named_with_the_closest_known_one() -> None:
    settings, problems = Acme.parse_settings({"api_key": "k", "chanel": "x"}, "s")
    assert settings is None
    assert problems == ["s.chanel: unknown setting (did you mean 'channel'?)"]
    _, problems = Acme.parse_settings({"api_key": "k", "zzz": 1}, "s")
    assert problems == ["s.zzz: unknown setting (known: api_key, channel)"]
    _, problems = Acme.parse_settings({}, "s")
    assert problems == ["s.api_key: is required"]


def item(n: int, **fields: Any) -> OutboxItem:
    return outbox_item(routed_payload(n, **fields))


def test_plan_each_turns_an_item_rejected_into_rejected_and_plans_the_rest() -> None:
    def build(one: OutboxItem) -> Planned | Sequence[Planned]:
        if one.payload["event"] is None:
            raise ItemRejected("event: missing")
        request = PlannedRequest(json_request("POST", "https://a.example/", {}), [one])
        return [FieldRefused(one, "phone", "no country"), request] if one.id == 3 else request

    planned = plan_each([item(1, event="A"), item(2), item(3, event="C")], build)
    assert [type(p).__name__ for p in planned] == [
        "Rejected", "PlannedRequest", "FieldRefused", "PlannedRequest"]
    assert planned[0] == Rejected(item(2), "event: missing")


def test_per_item_pairs_items_with_what_they_built() -> None:
    def event(one: OutboxItem) -> str:
        if not one.payload["event"]:
            raise ItemRejected("event: missing")
        return str(one.payload["event"])

    built, rejected = per_item([item(1, event="A"), item(2), item(3, event="C")], event)
    assert [(i.id, e) for i, e in built] == [(1, "A"), (3, "C")]
    assert rejected == [Rejected(item(2), "event: missing")]


class Raising(Destination[AcmeSettings]):
    """Lets ItemRejected out of build_requests for an item without an event."""

    manifest = Manifest(name="raising", description="test", docs_url="", batch_size=10)

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        for one in items:
            if "event" not in one.payload:
                raise ItemRejected("event: missing")
        raise ConnectionError("the plugin broke")


async def test_an_item_rejected_raised_out_of_build_requests_dead_letters_that_item(
        tmp_path: Path) -> None:
    loaded = parse_config({"destinations": {"r": {"plugin": "raising",
                                                  "settings": {"api_key": "k"}}}},
                          base_dir=tmp_path, env={}, types={"raising": Raising})
    box = SQLiteOutbox(tmp_path / "outbox.db")
    clock = ManualClock()
    try:
        box.enqueue([NewRow("r", "m1", {"n": 1}), NewRow("r", "m2", {"event": "A"})],
                    now=clock.now)
        report = await deliver_once(loaded, box, clock=clock)
        # The batch raised, so each item was built alone: the one without an event is dead,
        # the other is retried with the plugin's error.
        assert (report.dead, report.retried) == (1, 1)
        (letter,) = box.dead_letters("r", 10)
        assert (letter.message_id, letter.reason) == ("m1", "rejected: event: missing")
        row = box.row("r", "m2")
        assert row is not None and "ConnectionError: the plugin broke" in row["last_error"]
    finally:
        box.close()


def test_personal_data_is_hashed_once() -> None:
    # Meta's documented example: "john_smith@gmail.com" normalized, then hashed
    digest = sha256_hex("john_smith@gmail.com")
    assert digest == "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    assert is_sha256_hex(digest) and is_sha256_hex(digest.upper())
    assert not is_sha256_hex("john_smith@gmail.com") and not is_sha256_hex(digest[:-1])


def test_stringify_values_and_truncate() -> None:
    assert stringify_values({"a": 1.0, "b": None, "c": [1]}) == {"a": "1", "c": "[1]"}
    assert truncate("abcdef", 4) == "abc…" and truncate("abc", 4) == "abc"
    assert truncate("abcdef", 4, "...") == "a..."


class Keyed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Secret


@pytest.mark.parametrize("key", ["", "   "])
def test_a_secret_setting_may_not_be_blank(key: str) -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        Keyed(key=key)
    assert repr(Keyed(key="hunter2")).count("hunter2") == 0


def test_contact_options_read_the_first_email_found_stripped() -> None:
    opts = ContactOptions()
    assert opts.email_of({"traits": {"email": " ann@example.com "},
                          "identities": {"email": "bo@example.com"}}) == "ann@example.com"
    assert opts.email_of({"traits": {"email": "  "},
                          "identities": {"email": "bo@example.com"}}) == "bo@example.com"
    assert opts.email_of({"traits": {"email": "not an address"}}) is None
    assert opts.email_of({"traits": {}}) is None
    assert ContactOptions(email=["context.mail"]).email_of(
        {"traits": {"email": "ann@example.com"}, "context": {"mail": "c@example.com"}}
    ) == "c@example.com"


def test_contact_options_read_the_phone_in_e164_or_say_why_not() -> None:
    assert ContactOptions().phone_of({"traits": {"phone": "+1 (650) 555-1212"}}) == (
        "+16505551212")
    assert ContactOptions(phone_region="FR").phone_of(
        {"identities": {"phone": "06 12 34 56 78"}}) == "+33612345678"
    assert ContactOptions().phone_of({"traits": {"email": "ann@example.com"}}) is None
    with pytest.raises(PhoneError, match=r"set mapping\.options\.phone_region$"):
        ContactOptions().phone_of({"traits": {"phone": "06 12 34 56 78"}})
    with pytest.raises(PhoneError, match=r"^not a phone number$"):
        ContactOptions(phone_region="FR").phone_of({"traits": {"phone": "call me"}})
    # A number sent as JSON is read as its digits.
    assert ContactOptions(phone_region="US").e164(6505551212.0) == "+16505551212"


@given(JSON)
def test_json_content_is_what_json_dumps_writes_with_an_orjson_that_writes_1e16(
        value: Any) -> None:
    # An orjson older than the one installed may write exponents unlike Python whatever
    # their sign; then every exponent is looked for.
    with mock.patch.object(kit, "_ONLY_NEGATIVE_EXPONENTS_DIFFER", False):
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        assert json_content(value) == expected.encode()


@pytest.mark.parametrize("value", [1.5e-7, [1e-300], {"a": [None, -2.5e-10]}, 9.99e-05,
                                   {"n": None, "x": math.nan}, [None, -math.inf],
                                   {"text": "e-mail 1e-5", "v": 1e22}])
def test_json_content_writes_small_floats_and_nulls_as_json_does(value: Any) -> None:
    assert json_content(value) == json.dumps(value, separators=(",", ":"),
                                             ensure_ascii=False).encode()
