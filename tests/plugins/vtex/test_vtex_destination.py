"""Unit tests of the VTEX destination: what each routed identify becomes, the settings'
rules, and how each answer of Master Data is read (docs/destinations/vtex.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from vtex_helpers import APP_KEY, APP_TOKEN, destination, item

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    ItemRejected,
    PlannedRequest,
    Retry,
)
from crossdock.plugins.vtex import VtexDestination, VtexSettings


def planned(dest: VtexDestination, n: int = 1, **fields: Any
            ) -> tuple[PlannedRequest, list[FieldRefused]]:
    sends = list(dest.build_item(item(n, **fields)))  # type: ignore[arg-type]
    request = sends[-1]
    assert isinstance(request, PlannedRequest)
    refused = [s for s in sends[:-1] if isinstance(s, FieldRefused)]
    assert len(refused) == len(sends) - 1
    return request, refused


def body(request: PlannedRequest) -> dict[str, Any]:
    parsed = json.loads(request.request.content)
    assert isinstance(parsed, dict)
    return parsed


def test_an_identify_is_one_partial_upsert_of_the_cl_document_on_the_account_host() -> None:
    request, refused = planned(destination())
    assert refused == []
    assert request.request.method == "PATCH"
    assert str(request.request.url) == (
        "https://teststore.vtexcommercestable.com.br/api/dataentities/CL/documents")
    headers = request.request.headers
    assert headers["x-vtex-api-appkey"] == APP_KEY
    assert headers["x-vtex-api-apptoken"] == APP_TOKEN
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/vnd.vtex.ds.v10+json"
    assert body(request) == {"email": "ada1@example.com", "firstName": "Ada",
                             "lastName": "Lovelace", "isNewsletterOptIn": True}


def test_the_environment_and_the_data_entity_are_settings() -> None:
    request, _ = planned(destination(environment="vtexcommercebeta", data_entity="Newsletter"))
    assert str(request.request.url) == (
        "https://teststore.vtexcommercebeta.com.br/api/dataentities/Newsletter/documents")


def test_the_newsletter_opt_in_follows_a_known_email_consent_only() -> None:
    refused_consent, _ = planned(destination(), consent={"email": False, "sms": True})
    assert body(refused_consent)["isNewsletterOptIn"] is False
    unknown, _ = planned(destination(), consent={})
    assert "isNewsletterOptIn" not in body(unknown)
    never, _ = planned(destination(mapping={"newsletter_field": None}))
    assert "isNewsletterOptIn" not in body(never)


def test_the_phone_is_sent_in_e164_or_left_out_with_its_reason() -> None:
    request, refused = planned(destination(mapping={"phone_region": "BR"}), traits={
        "email": "ada1@example.com", "phone": "(11) 91234-5678"})
    assert body(request)["phone"] == "+5511912345678"
    assert refused == []
    request, refused = planned(destination(), traits={
        "email": "ada1@example.com", "phone": "91234-5678"})
    assert "phone" not in body(request)
    assert [r.field for r in refused] == ["phone"]
    assert "phone_region" in refused[0].reason


def test_values_a_document_field_cannot_hold_are_left_out_and_the_rest_sent() -> None:
    request, refused = planned(destination(mapping={"fields": {
        "firstName": "firstName", "lastName": "lastName", "tags": "tags",
        "nick": "corporateName"}}), traits={
        "email": "ada1@example.com", "firstName": "A" * 301, "tags": ["a", "b"],
        "nick": "Countess"})
    assert body(request) == {"email": "ada1@example.com", "corporateName": "Countess",
                             "isNewsletterOptIn": True}
    reasons = {r.field: r.reason for r in refused}
    assert "300 characters" in reasons["firstName"]
    assert "not an object or a list" in reasons["tags"]


def test_only_mapped_traits_are_sent_and_the_user_id_where_the_operator_says() -> None:
    request, _ = planned(destination(mapping={"user_id_field": "userId",
                                              "fields": {"firstName": None}}),
                         traits={"email": "ada1@example.com", "firstName": "Ada",
                                 "plan": "pro"})
    assert body(request) == {"email": "ada1@example.com", "userId": "u1",
                             "isNewsletterOptIn": True}


def test_a_person_without_an_email_is_rejected_naming_the_field() -> None:
    with pytest.raises(ItemRejected, match=r"^email: "):
        planned(destination(), traits={"firstName": "Anon"})
    with pytest.raises(ItemRejected, match="300 characters"):
        planned(destination(), traits={"email": "a" * 300 + "@example.com"})


@pytest.mark.parametrize("settings, field, rule", [
    ({"account_name": "my store"}, "account_name", "host label"),
    ({"environment": "vtex.commerce"}, "environment", "host label"),
    ({"app_key": " "}, "app_key", "not blank"),
    ({"app_token": "two words"}, "app_token", "one word"),
    ({"data_entity": "C-L"}, "data_entity", "data entity"),
])
def test_settings_name_the_field_and_the_rule(settings: dict[str, Any], field: str,
                                              rule: str) -> None:
    values = {"account_name": "teststore", "app_key": APP_KEY, "app_token": APP_TOKEN,
              **settings}
    with pytest.raises(ValidationError) as info:
        VtexSettings.model_validate(values)
    ((loc, message),) = [(e["loc"], e["msg"]) for e in info.value.errors()]
    assert loc == (field,) and rule in message
    assert "two words" not in message  # a secret is never repeated


def test_the_email_is_never_a_mapped_field() -> None:
    with pytest.raises(ValidationError, match="email is the document's key"):
        VtexDestination.parse_options({**VtexDestination.default_mapping()["options"],
                                       "fields": {"mail": "email"}})


def answer(status: int, payload: Any = None, **headers: str) -> httpx.Response:
    content = b"" if payload is None else json.dumps(payload).encode()
    return httpx.Response(status, content=content, headers=headers)


@pytest.mark.parametrize("status", [200, 201, 304])
def test_created_updated_and_unchanged_are_delivered(status: int) -> None:
    request, _ = planned(destination())
    reply = {"Id": "CL-1", "Href": "x", "DocumentId": "1"} if status != 304 else None
    assert destination().classify(request, answer(status, reply)) == DELIVERED


def test_refusals_are_dead_letters_with_master_data_s_message() -> None:
    dest = destination()
    request, _ = planned(dest)
    assert dest.classify(request, answer(400, {"Message": "Field 'plan' not found"})) == (
        Failed("HTTP 400: Field 'plan' not found"))
    assert dest.classify(request, answer(401, {"Message": "Unauthorized"})) == (
        Failed("bad credentials (HTTP 401): Unauthorized"))
    forbidden = dest.classify(request, answer(403, {"Message": "Unauthorized"}))
    assert isinstance(forbidden, Failed)
    assert "Insert or update document" in forbidden.reason
    assert dest.classify(request, answer(404, {"Message": "Data entity 'XX' not found"})) == (
        Failed("HTTP 404: Data entity 'XX' not found"))


def test_throttling_and_server_errors_are_retried() -> None:
    dest = destination()
    request, _ = planned(dest)
    throttled = dest.classify(request, answer(429, {"Message": "Too Many Requests"},
                                              **{"Retry-After": "3"}))
    assert isinstance(throttled, Retry) and throttled.after == 3
    assert isinstance(dest.classify(request, answer(503)), Retry)


def test_the_rate_key_is_per_account_and_never_shows_the_key() -> None:
    one, _ = planned(destination())
    other, _ = planned(destination(account_name="otherstore"))
    assert one.rate_key != other.rate_key
    assert one.rate_key.startswith("vtex:teststore:")
    assert APP_KEY not in one.rate_key
