"""The Attentive contract fake over real HTTP: it refuses what Attentive refuses (each rule's
source is on docs/destinations/attentive.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from attentive_helpers import API_KEY, SOURCE

from crossdock.plugins.attentive.fake import AttentiveFake, SignUpUnit
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, fake_process

USER = {"phone": "+19148440001", "email": "ada@example.com"}
ITEM = {"productId": "p1", "productVariantId": "v1", "price": [{"value": 19.99,
                                                                "currency": "USD"}]}


def post(server: RunningServer, path: str, body: Any, key: str | None = API_KEY
         ) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + path, json=body, headers=headers, timeout=10)


def test_a_subscription_subscribes_each_contact_the_unit_takes(
        server: RunningServer, fake: AttentiveFake) -> None:
    answer = post(server, "/v1/subscriptions", {"user": USER, "signUpSourceId": SOURCE})
    assert answer.status_code == 202
    assert [(r["subscription"]["channel"], r["subscriptionStatus"])
            for r in answer.json()["subscriptionResponses"]] == [("EMAIL", "PENDING"),
                                                                 ("TEXT", "PENDING")]
    assert [(s["channel"], s["contact"]) for s in fake.subscriptions] == [
        ("EMAIL", "ada@example.com"), ("TEXT", "+19148440001")]


def test_subscribing_a_subscribed_phone_again_texts_the_person(
        server: RunningServer, fake: AttentiveFake) -> None:
    body = {"user": {"phone": "+19148440001"}, "signUpSourceId": SOURCE}
    assert post(server, "/v1/subscriptions", body).status_code == 202
    again = post(server, "/v1/subscriptions", body)
    assert again.status_code == 202
    assert again.json()["subscriptionResponses"][0]["subscriptionStatus"] == (
        "ALREADY_SUBSCRIBED")
    assert fake.already_subscribed_texts == 1


def test_a_subscription_by_locale_needs_exactly_one_matching_unit(
        server: RunningServer, fake: AttentiveFake) -> None:
    body = {"user": USER, "locale": {"language": "en", "country": "US"},
            "subscriptionType": "MARKETING"}
    assert post(server, "/v1/subscriptions", body).status_code == 202
    fake.units["999"] = SignUpUnit()
    two = post(server, "/v1/subscriptions", body)
    assert two.status_code == 400 and "match 2 sign-up units" in two.json()["message"]
    none = post(server, "/v1/subscriptions", {**body, "subscriptionType": "TRANSACTIONAL"})
    assert none.status_code == 400 and "match 0 sign-up units" in none.json()["message"]


@pytest.mark.parametrize(("path", "body", "key", "status", "message"), [
    ("/v1/events/custom", {"type": "x", "user": USER}, None, 401, "Bearer"),
    ("/v1/events/custom", {"type": "x", "user": USER}, "wrong", 401, "Bearer"),
    ("/v1/events/custom", ["not an object"], API_KEY, 400, "JSON object"),
    # a user needs a phone, an email or an external identifier; phones are E.164
    ("/v1/events/custom", {"type": "x", "user": {}}, API_KEY, 400, "is required"),
    ("/v1/events/custom", {"type": "x", "user": {"phone": "19148440001"}}, API_KEY, 400,
     "E.164"),
    ("/v1/events/custom", {"type": "x", "user": {"email": "nope"}}, API_KEY, 400,
     "email address"),
    # custom events: the type's and the property keys' forbidden characters, the timestamp
    ("/v1/events/custom", {"type": "Order (late)", "user": USER}, API_KEY, 400,
     "must not contain ( )"),
    ("/v1/events/custom", {"type": "a,b", "user": USER}, API_KEY, 400, "must not contain ,"),
    ("/v1/events/custom", {"type": "x", "properties": {"a|b": 1}, "user": USER}, API_KEY, 400,
     "key 'a|b'"),
    ("/v1/events/custom", {"type": "x", "user": USER, "occurredAt": "yesterday"}, API_KEY,
     400, "RFC 3339"),
    ("/v1/events/custom", {"type": "x", "user": USER, "occurredAt": "2024-05-01T12:00:00"},
     API_KEY, 400, "UTC offset"),
    # subscriptions: a known unit, a contact it subscribes
    ("/v1/subscriptions", {"user": USER, "signUpSourceId": "42"}, API_KEY, 400,
     "no sign-up unit '42'"),
    ("/v1/subscriptions", {"user": USER}, API_KEY, 400, "signUpSourceId, or a locale"),
    ("/v1/subscriptions", {"user": {"externalIdentifiers": {"clientUserId": "u1"}},
                           "signUpSourceId": SOURCE}, API_KEY, 400, "no contact"),
    # e-commerce items
    ("/v1/events/ecommerce/purchase", {"items": [], "user": USER}, API_KEY, 400,
     "at least one item"),
    ("/v1/events/ecommerce/purchase", {"items": [{**ITEM, "productVariantId": None}],
                                       "user": USER}, API_KEY, 400, "productVariantId"),
    ("/v1/events/ecommerce/add-to-cart", {"items": [{**ITEM, "price": [{"value": "9"}]}],
                                          "user": USER}, API_KEY, 400, "must be a number"),
    ("/v1/events/ecommerce/product-view", {"items": [{**ITEM, "price": [
        {"value": 9, "currency": "dollars"}]}], "user": USER}, API_KEY, 400, "ISO 4217"),
    ("/v1/events/ecommerce/product-view", {"items": [{**ITEM, "quantity": 1.5}],
                                           "user": USER}, API_KEY, 400, "integer"),
    # custom attributes: no lists or objects, names of at most 200 characters
    ("/v1/attributes/custom", {"properties": {"cities": ["a", "b"]}, "user": USER}, API_KEY,
     400, "arrays and objects"),
    ("/v1/attributes/custom", {"properties": {"x" * 201: "1"}, "user": USER}, API_KEY, 400,
     "at most 200"),
    ("/v1/attributes/custom", {"properties": {}, "user": USER}, API_KEY, 400, "non-empty"),
    # identity: a client id with another identifier, each at most 100 characters
    ("/v1/identity-resolution/user-identifiers", {"email": "a@b.co"}, API_KEY, 400,
     "clientUserId or customIdentifiers"),
    ("/v1/identity-resolution/user-identifiers", {"clientUserId": "u1"}, API_KEY, 400,
     "another identifier"),
    ("/v1/identity-resolution/user-identifiers", {"clientUserId": "u" * 101,
                                                  "email": "a@b.co"}, API_KEY, 400,
     "at most 100"),
])
def test_refusals(server: RunningServer, path: str, body: Any, key: str | None, status: int,
                  message: str) -> None:
    answer = post(server, path, body, key)
    assert answer.status_code == status
    assert message in answer.json()["message"]


def test_accepted_requests_are_stored(server: RunningServer, fake: AttentiveFake) -> None:
    assert post(server, "/v1/events/custom", {
        "type": "Order Shipped", "properties": {"tracking": {"carrier": "UPS"}},
        "externalEventId": "m1", "occurredAt": "2024-05-01T12:00:00Z",
        "user": USER}).status_code == 200
    assert post(server, "/v1/events/ecommerce/purchase",
                {"items": [ITEM], "user": USER}).status_code == 200
    assert post(server, "/v1/attributes/custom",
                {"properties": {"plan": "pro", "age": "24"}, "user": USER}).status_code == 200
    assert post(server, "/v1/identity-resolution/user-identifiers",
                {"clientUserId": "u1", "email": "ada@example.com"}).status_code == 200
    assert post(server, "/v1/subscriptions/unsubscribe", {"user": USER}).status_code == 200
    assert [e["kind"] for e in fake.events] == ["custom", "purchase"]
    assert fake.attributes == {"ada@example.com": {"plan": "pro", "age": "24"}}
    assert fake.identities == [{"clientUserId": "u1", "email": "ada@example.com"}]
    assert fake.unsubscriptions == [{"user": USER, "subscriptions": None}]


def test_every_unsubscribe_texts_the_person_unless_silenced(
        server: RunningServer, fake: AttentiveFake, clock: ManualClock) -> None:
    for _ in range(2):
        assert post(server, "/v1/subscriptions/unsubscribe", {"user": USER}).status_code == 200
    assert fake.unsubscribed_texts == 2   # a repeat texts again
    silent = {"user": USER, "notification": {"disabled": True}}
    assert post(server, "/v1/subscriptions/unsubscribe", silent).status_code == 200
    assert fake.unsubscribed_texts == 2
    clock.advance(1.0)  # unsubscribe takes 5 requests a second
    for bad in ({"disabled": "yes"}, {"language": "de-DE"}, {"mute": True}, []):
        assert post(server, "/v1/subscriptions/unsubscribe",
                    {"user": USER, "notification": bad}).status_code == 400


def test_a_property_created_in_the_ui_takes_only_its_values(
        server: RunningServer, fake: AttentiveFake) -> None:
    fake.fixed_values["tier"] = {"Adult", "Teen"}
    assert post(server, "/v1/attributes/custom",
                {"properties": {"tier": "Teen"}, "user": USER}).status_code == 200
    refused = post(server, "/v1/attributes/custom",
                   {"properties": {"tier": "Senior"}, "user": USER})
    assert refused.status_code == 400 and "not one of the values" in refused.json()["message"]


def test_each_endpoint_has_its_own_per_second_limit(
        server: RunningServer, fake: AttentiveFake, clock: ManualClock) -> None:
    body = {"user": {"phone": "+19148440001"}, "signUpSourceId": SOURCE}
    answers = [post(server, "/v1/subscriptions", body) for _ in range(11)]
    assert [a.status_code for a in answers] == [202] * 10 + [429]
    assert answers[0].headers["x-ratelimit-limit"] == "10"
    assert answers[0].headers["x-ratelimit-remaining"] == "9"
    assert answers[10].headers["x-ratelimit-remaining"] == "0"
    # Another endpoint is not held back by the subscriptions' limit ...
    event = post(server, "/v1/events/custom", {"type": "x", "user": USER})
    assert event.status_code == 200 and event.headers["x-ratelimit-limit"] == "150"
    # ... and the next second starts afresh.
    clock.advance(1.0)
    assert post(server, "/v1/subscriptions", body).status_code == 202


def test_scripted_replies_answer_first(server: RunningServer, fake: AttentiveFake) -> None:
    fake.script([503])
    assert post(server, "/v1/events/custom", {"type": "x", "user": USER}).status_code == 503
    assert post(server, "/v1/events/custom", {"type": "x", "user": USER}).status_code == 200
    assert fake.statuses() == [503, 200]


def test_the_fake_runs_on_its_own() -> None:
    with fake_process("crossdock.plugins.attentive.fake", "--api-key", "k",
                      "--sign-up-source", "77") as proc:
        assert "Attentive fake on" in proc.banner
        answer = httpx.post(proc.url + "/v1/subscriptions", headers={
            "authorization": "Bearer k"}, json={"user": USER, "signUpSourceId": "77"})
        assert answer.status_code == 202
