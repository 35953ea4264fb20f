"""The Attentive plugin against its contract fake: what each message becomes on the wire, what
it leaves out and why, and how Attentive's answers are read."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from attentive_helpers import API_KEY, SOURCE, destination, item
from pydantic import ValidationError

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.attentive import AttentiveDestination, AttentiveSettings
from crossdock.plugins.attentive.fake import AttentiveFake
from crossdock.testing.exchange import exchange, outcomes
from crossdock.testing.fakeserver import RunningServer

USER = {"phone": "+19148440001", "email": "ada1@example.com",
        "externalIdentifiers": {"clientUserId": "u1"}}


def planned(dest: AttentiveDestination, *items: Any) -> list[Any]:
    return list(dest.build_requests(list(items)))


def sent(entry: Any) -> tuple[str, dict[str, Any]]:
    assert isinstance(entry, PlannedRequest)
    return entry.request.url.path, json.loads(entry.request.content)


def test_identify_sets_custom_attributes_of_the_person_it_names(
        server: RunningServer, fake: AttentiveFake) -> None:
    dest = destination(server)
    one = item(1, "identify", traits={
        "email": "ada1@example.com", "phone": "+1 914 844 0001", "plan": "pro", "age": "24",
        "smsOptIn": "true", "nothing": None})
    (request,) = planned(dest, one)
    path, body = sent(request)
    assert path == "/v1/attributes/custom"
    # identifiers and opt-ins are not attributes; a null is no value
    assert body == {"properties": {"age": "24", "plan": "pro"}, "user": USER}
    assert outcomes(dest, [one]) == [DELIVERED]
    assert fake.attributes == {"ada1@example.com": {"age": "24", "plan": "pro"}}


def test_an_identify_with_only_identifiers_links_them(
        server: RunningServer, fake: AttentiveFake) -> None:
    dest = destination(server)
    one = item(1, "identify", traits={"email": "ada1@example.com"})
    (request,) = planned(dest, one)
    assert sent(request) == ("/v1/identity-resolution/user-identifiers",
                             {"clientUserId": "u1", "email": "ada1@example.com"})
    assert outcomes(dest, [one]) == [DELIVERED]
    assert fake.identities == [{"clientUserId": "u1", "email": "ada1@example.com"}]


def test_an_identify_with_nothing_to_set_or_link_is_a_dead_letter_naming_why(
        server: RunningServer) -> None:
    one = item(1, "identify", userId=None, traits={"email": "ada1@example.com"})
    (rejected,) = planned(destination(server), one)
    assert rejected == Rejected(one, "identify: no custom attribute to set, and no userId to "
                                     "link to a phone or email")


def test_a_custom_event_carries_its_id_time_and_properties(
        server: RunningServer, fake: AttentiveFake) -> None:
    dest = destination(server)
    one = item(1, event="Order Shipped", properties={"carrier": "UPS", "weight": 2.5})
    (request,) = planned(dest, one)
    assert sent(request) == ("/v1/events/custom", {
        "type": "Order Shipped", "user": USER, "externalEventId": "msg-1",
        "properties": {"carrier": "UPS", "weight": 2.5},
        "occurredAt": "2024-05-01T12:00:00+00:00"})
    assert outcomes(dest, [one]) == [DELIVERED]
    assert fake.events[0]["type"] == "Order Shipped"


def test_an_event_name_attentive_refuses_is_a_dead_letter_pointing_at_event_names(
        server: RunningServer, fake: AttentiveFake) -> None:
    one = item(1, event="Viewed (Mobile), twice")
    (rejected,) = planned(destination(server), one)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == (
        "event: 'Viewed (Mobile), twice' holds ( ) ,, which Attentive refuses in an event "
        "type: rename it in mapping.event_names")


def test_a_property_key_attentive_refuses_is_left_out_and_reported(
        server: RunningServer) -> None:
    # The shipped mapping normalizes keys; an operator who turned that off gets this.
    one = item(1, event="Clicked", properties={"a|b": 1, "ok": 2})
    refused, request = planned(destination(server), one)
    assert refused == FieldRefused(one, "properties.a|b", 'a property key must not hold " { } '
                                   "[ ] \\ | (keys.normalize in the mapping)")
    assert sent(request)[1]["properties"] == {"ok": 2}


def test_an_anonymous_visitor_is_a_dead_letter(server: RunningServer) -> None:
    one = item(1, event="Clicked", userId=None, traits={})
    (rejected,) = planned(destination(server), one)
    assert rejected == Rejected(one, "user: no phone, email or userId to match an Attentive "
                                     "user by (an anonymous visitor cannot be sent)")


@pytest.mark.parametrize(("phone", "region", "expected", "refusal"), [
    ("+44 20 7946 0018", None, "+442079460018", None),
    ("(914) 844-0001", "US", "+19148440001", None),
    ("(914) 844-0001", None, None, "left out: a national number (no + or 00 country prefix) "
                                   "and no country to read it in: set "
                                   "mapping.options.phone_region"),
    ("call me", "US", None, "left out: not a phone number"),
])
def test_phones_are_sent_in_e164_or_left_out_with_the_rule(
        server: RunningServer, phone: str, region: str | None, expected: str | None,
        refusal: str | None) -> None:
    dest = destination(server, mapping={"phone_region": region})
    one = item(1, event="Clicked", traits={"phone": phone})
    *refused, request = planned(dest, one)
    assert sent(request)[1]["user"].get("phone") == expected
    assert refused == ([] if refusal is None else [FieldRefused(one, "phone", refusal)])


def test_ecommerce_events_become_attentive_items(
        server: RunningServer, fake: AttentiveFake) -> None:
    dest = destination(server)
    order = item(1, event="Order Completed", properties={"currency": "eur", "products": [
        {"product_id": "p1", "sku": "p1-m", "name": "Tee", "price": "19.5", "quantity": 2},
        {"product_id": "p2", "variant": "blue", "price": 5, "image_url": "https://x.io/p2"},
    ]})
    viewed = item(2, event="Product Viewed", properties={
        "product_id": "p3", "price": 12, "currency": "USD", "url": "https://x.io/p3"})
    first, second = planned(dest, order, viewed)
    assert sent(first) == ("/v1/events/ecommerce/purchase", {
        "items": [
            {"productId": "p1", "productVariantId": "p1-m", "name": "Tee",
             "price": [{"value": 19.5, "currency": "EUR"}], "quantity": 2},
            {"productId": "p2", "productVariantId": "blue", "productImage": "https://x.io/p2",
             "price": [{"value": 5, "currency": "EUR"}]}],
        "user": USER, "occurredAt": "2024-05-01T12:00:00+00:00"})
    # No variant or sku: the product id stands for the variant.
    path, body = sent(second)
    assert path == "/v1/events/ecommerce/product-view"
    assert body["items"] == [{"productId": "p3", "productVariantId": "p3",
                              "productUrl": "https://x.io/p3",
                              "price": [{"value": 12, "currency": "USD"}]}]
    assert outcomes(dest, [order, viewed]) == [DELIVERED, DELIVERED]
    assert [e["kind"] for e in fake.events] == ["purchase", "product-view"]


def test_products_attentive_cannot_take_are_left_out_and_none_left_is_a_dead_letter(
        server: RunningServer) -> None:
    dest = destination(server)
    partly = item(1, event="Order Completed", properties={"products": [
        {"product_id": "p1", "price": 3}, {"name": "no id"}, "junk"]})
    refused_one, refused_two, request = planned(dest, partly)
    assert refused_one == FieldRefused(partly, "items[1]", "left out: Attentive needs "
                                                           "productId, productVariantId, price")
    assert refused_two == FieldRefused(partly, "items[2]", "a product must be an object")
    assert len(sent(request)[1]["items"]) == 1
    nothing = item(2, event="Product Added", properties={"name": "Tee"})
    *_, rejected = planned(dest, nothing)
    assert rejected == Rejected(nothing, "items: no product with a product id, a variant id "
                                         "and a price")


@pytest.mark.parametrize(("consent", "user", "reason"), [
    ({"sms": True, "email": True}, {"phone": "+19148440001", "email": "ada1@example.com"},
     None),
    ({"sms": False, "email": True}, {"email": "ada1@example.com"}, None),
    ({"sms": True, "email": False}, {"phone": "+19148440001"}, None),
    ({"sms": False, "email": False}, None,
     "subscription: no channel to subscribe (consent 'sms' not granted; consent 'email' not "
     "granted)"),
    ({}, None, "subscription: no channel to subscribe (consent 'sms' not granted; consent "
               "'email' not granted)"),
])
def test_a_subscription_subscribes_only_the_channels_with_consent(
        server: RunningServer, fake: AttentiveFake, consent: dict[str, bool],
        user: dict[str, str] | None, reason: str | None) -> None:
    dest = destination(server)
    one = item(1, event="User Subscribed", consent=consent)
    (request,) = planned(dest, one)
    if reason is not None:
        assert request == Rejected(one, reason)
        return
    assert sent(request) == ("/v1/subscriptions", {
        "user": user, "signUpSourceId": SOURCE, "externalEventId": "msg-1",
        "externalIdentifiers": {"clientUserId": "u1"}})
    assert outcomes(dest, [one]) == [DELIVERED]
    assert {s["contact"] for s in fake.subscriptions} == set(user.values())


def test_a_subscription_without_a_sign_up_unit_is_a_dead_letter_and_validate_warns(
        server: RunningServer) -> None:
    dest = destination(server, source=None)
    one = item(1, event="User Subscribed")
    assert planned(dest, one) == [Rejected(
        one, "settings.sign_up_source_id: required to subscribe anyone")]
    assert dest.config_warnings(None) == [
        "settings.sign_up_source_id is not set: subscribe events (User Subscribed) go to the "
        "dead letters"]


def test_single_opt_in_is_asked_for_only_when_set(server: RunningServer) -> None:
    (request,) = planned(destination(server, single_opt_in=True),
                         item(1, event="User Subscribed"))
    assert sent(request)[1]["singleOptIn"] is True


def test_an_unsubscribe_event_unsubscribes_every_contact(
        server: RunningServer, fake: AttentiveFake) -> None:
    dest = destination(server)
    # A revocation needs no consent: it is one.
    one = item(1, event="User Unsubscribed", consent={})
    (request,) = planned(dest, one)
    assert sent(request) == ("/v1/subscriptions/unsubscribe", {
        "user": {"phone": "+19148440001", "email": "ada1@example.com"}})
    assert outcomes(dest, [one]) == [DELIVERED]
    assert fake.unsubscriptions[0]["user"]["email"] == "ada1@example.com"


def test_a_retried_unsubscribe_does_not_text_the_person_again(
        server: RunningServer, fake: AttentiveFake) -> None:
    dest = destination(server)
    one = item(1, event="User Unsubscribed", consent={})
    # Attentive unsubscribes the person and texts them so, but its answer is lost.
    fake.lost_answers = 1
    (outcome,) = outcomes(dest, [one])
    assert isinstance(outcome, Retry) and fake.unsubscribed_texts == 1
    # Attentive texts again at every unsubscribe: the retry asks it not to.
    assert outcomes(dest, [replace(one, attempts=2)]) == [DELIVERED]
    assert len(fake.unsubscriptions) == 2 and fake.unsubscribed_texts == 1
    assert fake.received[-1]["body"]["notification"] == {"disabled": True}


def test_requests_share_a_limit_per_endpoint_and_key_without_showing_the_key(
        server: RunningServer) -> None:
    dest = destination(server)
    one, two, three = planned(dest, item(1, event="A"), item(2, event="B"),
                              item(3, event="User Subscribed"))
    assert one.rate_key == two.rate_key != three.rate_key
    assert one.rate_key.startswith("attentive/v1/events/custom:")
    assert API_KEY not in one.rate_key + three.rate_key
    assert one.request.headers["authorization"] == f"Bearer {API_KEY}"


def test_answers_are_classified(server: RunningServer, fake: AttentiveFake) -> None:
    dest = destination(server)
    fake.script([500, {"status": 429, "body": "slow down", "headers": {"Retry-After": "3"}}])
    assert outcomes(dest, [item(1, event="A")]) == [Retry("HTTP 500: ", None)]
    assert outcomes(dest, [item(2, event="A")]) == [Retry("HTTP 429: slow down", 3.0)]
    fake.fixed_values["tier"] = {"Adult"}
    refused = outcomes(dest, [item(3, "identify", traits={"tier": "Senior"})])
    assert refused == [Failed('HTTP 400: {"message": "properties.tier: \'Senior\' is not one '
                              'of the values defined for it in Attentive"}')]
    wrong = destination(server, key="not-the-key")
    assert outcomes(wrong, [item(4, event="A")]) == [Failed(
        'bad credentials (HTTP 401): {"message": "Unauthorized: a valid Bearer API key is '
        'required"}')]


def test_a_throttled_request_waits_a_second_when_attentive_says_nothing_more(
        server: RunningServer, fake: AttentiveFake) -> None:
    fake.rate_limits = {"/v1/subscriptions": 1.0}
    dest = destination(server)
    results = [ex.outcome for ex in exchange(dest, [item(1, event="User Subscribed"),
                                                    item(2, event="User Subscribed")])
               if not isinstance(ex, Rejected | FieldRefused)]
    assert results == [DELIVERED, Retry('HTTP 429: {"message": "Too Many Requests"}', 1.0)]


@pytest.mark.parametrize(("settings", "problem"), [
    ({"api_key": ""}, "must be the API key"),
    ({"api_key": "two words"}, "must be the API key"),
    ({"api_key": "k", "sign_up_source_id": "12 34"}, "sign-up source id"),
    ({"api_key": "k", "base_url": "ftp://x"}, "URL scheme"),
    ({"api_key": "k", "typo": 1}, "Extra inputs"),
])
def test_validate_refuses_settings_attentive_would_refuse(settings: dict[str, Any],
                                                          problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as raised:
        AttentiveSettings.model_validate(settings)
    assert "two words" not in str(raised.value).split("input_value")[0]


@pytest.mark.parametrize(("options", "problem"), [
    ({"phone_region": "Atlantis"}, "not a region phone numbers are read in"),
    ({"email": ["traits..email"]}, "dotted paths"),
    ({"ecommerce": {"Order Completed": "checkout"}}, "options.ecommerce.Order Completed"),
    ({"item": {"productId": []}}, "name at least one product key"),
    ({"subscribe_events": [" "]}, "must not be empty"),
    ({"emial": ["traits.email"]}, "did you mean 'email'"),
])
def test_validate_names_bad_options(options: dict[str, Any], problem: str) -> None:
    problems = AttentiveDestination.options_problems(options, "options")
    assert any(problem in p for p in problems), problems


def test_a_real_answer_without_a_fake_is_read_the_same(server: RunningServer) -> None:
    # classify reads statuses and headers only: an HTML page from a proxy is no crash.
    dest = destination(server)
    (request,) = planned(dest, item(1, event="A"))
    page = httpx.Response(502, text="<html>bad gateway</html>", request=request.request)
    assert dest.classify(request, page) == Retry("HTTP 502: <html>bad gateway</html>", None)


def test_attribute_values_attentive_cannot_take_are_left_out_and_reported(
        server: RunningServer) -> None:
    # The shipped mapping stringifies traits; an operator who turned that off gets this.
    long = "x" * 201
    one = item(1, "identify", traits={"email": "ada1@example.com", "cities": ["a", "b"],
                                      long: "1", "plan": "pro"})
    *refused, request = planned(destination(server), one)
    assert refused == [
        FieldRefused(one, "traits.cities", "Attentive takes no lists or objects as custom "
                                           "attributes (values.stringify sends them as text)"),
        FieldRefused(one, f"traits.{'x' * 40}…", "an attribute name is at most 200 characters"),
    ]
    assert sent(request)[1]["properties"] == {"plan": "pro"}


def test_a_quantity_that_is_no_whole_number_and_a_time_without_offset_are_left_out(
        server: RunningServer) -> None:
    one = item(1, event="Product Added", timestamp="2024-05-01T12:00:00",
               properties={"product_id": "p1", "price": 5, "quantity": 1.5})
    refused, request = planned(destination(server), one)
    assert refused == FieldRefused(one, "timestamp",
                                   "left out: not a date-time with a UTC offset")
    body = sent(request)[1]
    assert "occurredAt" not in body and "quantity" not in body["items"][0]
