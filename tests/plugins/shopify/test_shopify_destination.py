"""Unit tests of the Shopify destination: the flow's requests for each message, the settings'
rules, and how each answer is read (docs/destinations/shopify.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from shopify_helpers import TOKEN, audience, destination, item

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    FollowUp,
    ItemRejected,
    OutboxItem,
    PlannedRequest,
    Retry,
)
from crossdock.plugins.shopify import ShopifyDestination, ShopifySettings
from crossdock.plugins.shopify.destination import CREATE_STEP, FIND_STEP, TAGS_STEP, UPDATE_STEP

FOUND = {"data": {"customers": {"nodes": [{"id": "gid://shopify/Customer/7", "tags": []}]}}}
NONE = {"data": {"customers": {"nodes": []}}}
COST = {"requestedQueryCost": 10, "actualQueryCost": 10,
        "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 990.0,
                           "restoreRate": 100.0}}


def first(dest: ShopifyDestination, entry: OutboxItem
          ) -> tuple[PlannedRequest, list[FieldRefused]]:
    sends = list(dest.build_item(entry))  # type: ignore[arg-type]
    planned = sends[-1]
    assert isinstance(planned, PlannedRequest)
    return planned, [s for s in sends[:-1] if isinstance(s, FieldRefused)]


def sent(request: httpx.Request) -> dict[str, Any]:
    parsed = json.loads(request.content)
    assert isinstance(parsed, dict)
    return parsed


def answer(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


def step(dest: ShopifyDestination, entry: OutboxItem, name: str, body: Any
         ) -> FollowUp | Any:
    planned, _ = first(dest, entry)
    return dest.classify(PlannedRequest(planned.request, [entry], planned.rate_key, name),
                         answer(body))


def test_every_message_starts_by_finding_the_customer_by_email() -> None:
    planned, refused = first(destination(), item(1))
    assert refused == [] and planned.step == FIND_STEP
    request = planned.request
    assert str(request.url) == "https://test-store.myshopify.com/admin/api/2025-10/graphql.json"
    assert request.headers["x-shopify-access-token"] == TOKEN
    body = sent(request)
    assert body["variables"] == {"query": 'email:"ada1@example.com"'}
    assert "customers(first: 1, query: $query)" in body["query"]


def test_the_api_version_is_pinned_by_the_setting() -> None:
    planned, _ = first(destination(api_version="2026-01"), item(1))
    assert "/admin/api/2026-01/graphql.json" in str(planned.request.url)


def test_a_new_person_is_created_with_both_consents() -> None:
    entry = item(1, traits={"email": "ada1@example.com", "firstName": "Ada",
                            "phone": "+1 415 555 0101"}, consent={"email": True, "sms": False})
    follow = step(destination(), entry, FIND_STEP, NONE)
    assert isinstance(follow, FollowUp) and follow.step == CREATE_STEP
    body = sent(follow.request)
    assert "customerCreate(input: $input)" in body["query"]
    assert body["variables"]["input"] == {
        "email": "ada1@example.com", "firstName": "Ada", "phone": "+14155550101",
        "emailMarketingConsent": {"marketingState": "SUBSCRIBED",
                                  "marketingOptInLevel": "SINGLE_OPT_IN",
                                  "consentUpdatedAt": "2024-05-01T12:00:00+00:00"},
        "smsMarketingConsent": {"marketingState": "UNSUBSCRIBED",
                                "consentUpdatedAt": "2024-05-01T12:00:00+00:00"}}


def test_a_known_person_is_updated_and_consent_goes_through_its_own_mutations() -> None:
    entry = item(1, traits={"email": "ada1@example.com", "phone": "+14155550101"},
                 consent={"email": False, "sms": True})
    follow = step(destination(opt_in_level="CONFIRMED_OPT_IN"), entry, FIND_STEP, FOUND)
    assert isinstance(follow, FollowUp) and follow.step == UPDATE_STEP
    body = sent(follow.request)
    query = body["query"]
    assert "customerUpdate(input: $input)" in query
    assert "customerEmailMarketingConsentUpdate(input: $email)" in query
    assert "customerSmsMarketingConsentUpdate(input: $sms)" in query
    variables = body["variables"]
    assert variables["input"] == {"id": "gid://shopify/Customer/7",
                                  "email": "ada1@example.com", "phone": "+14155550101"}
    assert variables["email"]["emailMarketingConsent"]["marketingState"] == "UNSUBSCRIBED"
    assert variables["sms"] == {"customerId": "gid://shopify/Customer/7",
                                "smsMarketingConsent": {
                                    "marketingState": "SUBSCRIBED",
                                    "marketingOptInLevel": "CONFIRMED_OPT_IN",
                                    "consentUpdatedAt": "2024-05-01T12:00:00+00:00"}}


def test_an_unknown_consent_is_not_sent_and_sms_consent_needs_a_phone() -> None:
    follow = step(destination(), item(1, consent={"sms": True}), FIND_STEP, FOUND)
    assert isinstance(follow, FollowUp)
    query = sent(follow.request)["query"]
    assert "EmailMarketingConsent" not in query and "SmsMarketingConsent" not in query
    create = step(destination(), item(1, consent={}), FIND_STEP, NONE)
    assert isinstance(create, FollowUp)
    assert "emailMarketingConsent" not in sent(create.request)["variables"]["input"]


def test_a_phone_that_cannot_be_read_is_left_out_and_reported() -> None:
    planned, refused = first(destination(), item(1, traits={"email": "ada1@example.com",
                                                            "phone": "555 0101"}))
    assert [r.field for r in refused] == ["phone"]
    assert "phone_region" in refused[0].reason
    assert planned.step == FIND_STEP  # the customer is still sent, without the phone


def test_audiences_become_tags_added_or_removed() -> None:
    dest = destination(tag_prefix="cd-")
    added = step(dest, audience(1, "audience_entered"), FIND_STEP, FOUND)
    assert isinstance(added, FollowUp) and added.step == TAGS_STEP
    assert sent(added.request)["variables"] == {"id": "gid://shopify/Customer/7",
                                                "tags": ["cd-high_value"]}
    assert "tagsAdd(" in sent(added.request)["query"]
    removed = step(dest, audience(1, "audience_exited"), FIND_STEP, FOUND)
    assert isinstance(removed, FollowUp) and "tagsRemove(" in sent(removed.request)["query"]
    created = step(dest, audience(1, "audience_entered"), FIND_STEP, NONE)
    assert isinstance(created, FollowUp) and created.step == CREATE_STEP
    assert sent(created.request)["variables"]["input"]["tags"] == ["cd-high_value"]
    assert step(dest, audience(1, "audience_exited"), FIND_STEP, NONE) == DELIVERED


@pytest.mark.parametrize("entry, field", [
    (item(1, traits={"firstName": "Anon"}), "email"),
    (item(1, type="track", event="Order Completed"), "event"),
    (audience(1, "audience_entered", name=" "), "properties.audience"),
    (audience(1, "audience_entered", name="a,b"), "properties.audience"),
])
def test_what_cannot_be_sent_is_rejected_naming_the_field(entry: OutboxItem,
                                                          field: str) -> None:
    with pytest.raises(ItemRejected) as info:
        first(destination(), entry)
    assert info.value.reason.startswith(f"{field}: ")


@pytest.mark.parametrize("settings, field", [
    ({"shop": "my shop"}, "shop"),
    ({"api_version": "2025-02"}, "api_version"),
    ({"api_version": "latest"}, "api_version"),
    ({"access_token": "two words"}, "access_token"),
    ({"opt_in_level": "DOUBLE"}, "opt_in_level"),
    ({"tag_prefix": "a,"}, "tag_prefix"),
])
def test_settings_name_the_field_and_the_rule(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ShopifySettings.model_validate({"shop": "s", "access_token": TOKEN, **settings})
    ((loc, message),) = [(e["loc"], e["msg"]) for e in info.value.errors()]
    assert loc == (field,) and "two words" not in message


def test_the_shop_may_be_written_with_its_domain() -> None:
    settings = ShopifySettings.model_validate({"shop": "Acme.myshopify.com",
                                               "access_token": TOKEN})
    assert settings.root == "https://acme.myshopify.com"


def test_user_errors_are_dead_letters_naming_the_field() -> None:
    dest = destination()
    outcome = step(dest, item(1), UPDATE_STEP, {"data": {"customerUpdate": {
        "customer": None, "userErrors": [{"field": ["phone"], "message": "Phone is invalid"}]}},
        "extensions": {"cost": COST}})
    assert outcome == Failed("shopify userErrors: phone: Phone is invalid")
    assert step(dest, item(1), UPDATE_STEP, {"data": {"customerUpdate": {
        "customer": {"id": "x"}, "userErrors": []}}}) == DELIVERED


def test_a_create_that_lost_a_race_finds_the_customer_again() -> None:
    follow = step(destination(), item(1), CREATE_STEP, {"data": {"customerCreate": {
        "customer": None, "userErrors": [{"field": ["email"],
                                          "message": "Email has already been taken"}]}}})
    assert isinstance(follow, FollowUp) and follow.step == FIND_STEP


def test_throttled_waits_what_the_cost_bucket_says() -> None:
    throttled = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                 "extensions": {"cost": {"requestedQueryCost": 50, "actualQueryCost": None,
                                         "throttleStatus": {"maximumAvailable": 1000.0,
                                                            "currentlyAvailable": 10.0,
                                                            "restoreRate": 100.0}}}}
    outcome = step(destination(), item(1), FIND_STEP, throttled)
    assert isinstance(outcome, Retry) and outcome.after == pytest.approx(0.4)
    planned, _ = first(destination(), item(1))
    too_many = destination().classify(planned, answer(throttled, 429, **{"Retry-After": "2"}))
    assert isinstance(too_many, Retry) and too_many.after == 2


def test_other_top_level_errors_and_credentials_are_dead_letters() -> None:
    outcome = step(destination(), item(1), FIND_STEP, {"errors": [{
        "message": "Field 'nope' doesn't exist on type 'QueryRoot'",
        "extensions": {"code": "undefinedField"}}]})
    assert isinstance(outcome, Failed) and "undefinedField" in outcome.reason
    planned, _ = first(destination(), item(1))
    bad = destination().classify(planned, answer({"errors": "[API] Invalid API key"}, 401))
    assert isinstance(bad, Failed) and bad.reason.startswith("bad credentials (HTTP 401)")
    assert isinstance(destination().classify(planned, answer({}, 503)), Retry)


def test_the_rate_key_is_per_store_and_never_shows_the_token() -> None:
    one, _ = first(destination(), item(1))
    other, _ = first(destination(shop="other"), item(1))
    assert one.rate_key != other.rate_key and TOKEN not in one.rate_key
