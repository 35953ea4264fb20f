"""The Shopify contract fake refuses what the GraphQL Admin API refuses
(docs/destinations/shopify.md): spoken to over HTTP, without the plugin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from shopify_helpers import TOKEN

from crossdock.plugins.shopify.const import CREATE, FIND, TAGS_ADD
from crossdock.plugins.shopify.fake import BAD_TOKEN, ShopifyFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer

UPDATE = ("mutation U($input: CustomerInput!) { customerUpdate(input: $input) "
          "{ customer { id } userErrors { field message } } }")
EMAIL_CONSENT = ("mutation E($email: CustomerEmailMarketingConsentUpdateInput!) { "
                 "customerEmailMarketingConsentUpdate(input: $email) { userErrors { field "
                 "message code } } }")


def post(server: RunningServer, query: str, variables: dict[str, Any] | None = None,
         token: str | None = TOKEN, version: str = "2025-10") -> httpx.Response:
    headers = {"X-Shopify-Access-Token": token} if token is not None else {}
    return httpx.post(f"{server.url}/admin/api/{version}/graphql.json", headers=headers,
                      json={"query": query, "variables": variables or {}})


def create(server: RunningServer, **fields: Any) -> dict[str, Any]:
    body = post(server, CREATE, {"input": fields}).json()
    result = body["data"]["customerCreate"]
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("token", [None, "shpat_other"])
def test_the_access_token_is_required(server: RunningServer, token: str | None) -> None:
    response = post(server, FIND, {"query": 'email:"a@example.com"'}, token=token)
    assert response.status_code == 401 and response.json() == {"errors": BAD_TOKEN}


def test_answers_name_the_version_served(server: RunningServer) -> None:
    response = post(server, FIND, {"query": 'email:"a@example.com"'}, version="2026-01")
    assert response.headers["X-Shopify-API-Version"] == "2026-01"


def test_unknown_fields_and_missing_variables_are_top_level_errors(
        server: RunningServer) -> None:
    unknown = post(server, "query { shop(id: 1) { name } }")
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["extensions"]["code"] == "undefinedField"
    missing = post(server, FIND, {})
    assert missing.json()["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    not_input = post(server, CREATE, {"input": {"email": "a@example.com", "plan": "pro"}})
    assert not_input.json()["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"


def test_every_answer_carries_its_cost_and_the_bucket(server: RunningServer) -> None:
    body = post(server, FIND, {"query": 'email:"a@example.com"'}).json()
    assert body["data"] == {"customers": {"nodes": []}}
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2
    assert cost["throttleStatus"] == {"maximumAvailable": 1000.0, "currentlyAvailable": 998.0,
                                      "restoreRate": 100.0}


def test_a_query_the_bucket_cannot_pay_for_is_throttled(server: RunningServer,
                                                        fake: ShopifyFake,
                                                        clock: ManualClock) -> None:
    fake.maximum, fake.restore_rate = 12.0, 4.0
    assert create(server, email="a@example.com")["userErrors"] == []  # costs 10 of 12
    throttled = post(server, CREATE, {"input": {"email": "b@example.com"}})
    assert throttled.status_code == 200
    body = throttled.json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 2.0
    clock.advance(2.0)  # 2 + 2 s x 4 points = 10: enough
    assert post(server, CREATE, {"input": {"email": "b@example.com"}}).json()["data"]


def test_throttled_may_be_a_429_with_retry_after(server: RunningServer,
                                                 fake: ShopifyFake) -> None:
    fake.maximum, fake.restore_rate, fake.throttled_status = 10.0, 4.0, 429
    create(server, email="a@example.com")
    throttled = post(server, CREATE, {"input": {"email": "b@example.com"}})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"


@pytest.mark.parametrize("fields, field, message", [
    ({"email": "not-an-email"}, ["email"], "Email is invalid"),
    ({"email": "a@example.com", "phone": "4155550101"}, ["phone"], "Phone is invalid"),
    ({"phone": "+14155550101", "emailMarketingConsent": {"marketingState": "SUBSCRIBED"}},
     ["emailMarketingConsent"], "email address is required"),
    ({"email": "a@example.com", "smsMarketingConsent": {"marketingState": "SUBSCRIBED"}},
     ["smsMarketingConsent"], "phone number is required"),
    ({"email": "a@example.com", "emailMarketingConsent": {"marketingState": "NOT_SUBSCRIBED"}},
     ["emailMarketingConsent"], "marketingState"),
    ({"email": "a@example.com", "emailMarketingConsent": {
        "marketingState": "SUBSCRIBED", "marketingOptInLevel": "DOUBLE"}},
     ["emailMarketingConsent"], "marketingOptInLevel"),
    ({"email": "a@example.com", "tags": ["x" * 256]}, ["tags"], "255"),
])
def test_customer_rules_are_user_errors(server: RunningServer, fake: ShopifyFake,
                                        fields: dict[str, Any], field: list[str],
                                        message: str) -> None:
    result = create(server, **fields)
    assert result["customer"] is None
    (error,) = result["userErrors"]
    assert error["field"] == field and message in error["message"]
    assert fake.customers == {}


def test_email_and_phone_are_unique(server: RunningServer) -> None:
    create(server, email="a@example.com", phone="+14155550101")
    (taken,) = create(server, email="A@example.com")["userErrors"]
    assert taken["message"] == "Email has already been taken"
    (phone,) = create(server, email="b@example.com", phone="+14155550101")["userErrors"]
    assert phone["message"] == "Phone has already been taken"


def test_consent_is_changed_by_its_own_mutation_not_by_customer_update(
        server: RunningServer, fake: ShopifyFake) -> None:
    customer_id = create(server, email="a@example.com")["customer"]["id"]
    refused = post(server, UPDATE, {"input": {
        "id": customer_id, "emailMarketingConsent": {"marketingState": "SUBSCRIBED"}}})
    (error,) = refused.json()["data"]["customerUpdate"]["userErrors"]
    assert "customerEmailMarketingConsentUpdate" in error["message"]
    done = post(server, EMAIL_CONSENT, {"email": {
        "customerId": customer_id, "emailMarketingConsent": {"marketingState": "SUBSCRIBED"}}})
    assert done.json()["data"]["customerEmailMarketingConsentUpdate"]["userErrors"] == []
    assert fake.customers[customer_id]["emailMarketingConsent"]["marketingState"] == (
        "SUBSCRIBED")
    missing = post(server, UPDATE, {"input": {"id": "gid://shopify/Customer/1"}})
    assert missing.json()["data"]["customerUpdate"]["userErrors"][0]["field"] == ["id"]


def test_tags_are_added_to_a_customer_found_by_email(server: RunningServer,
                                                     fake: ShopifyFake) -> None:
    customer_id = create(server, email="a@example.com")["customer"]["id"]
    nodes = post(server, FIND, {"query": 'email:"A@example.com"'}).json()["data"][
        "customers"]["nodes"]
    assert nodes == [{"id": customer_id, "tags": []}]
    post(server, TAGS_ADD, {"id": customer_id, "tags": ["vip"]})
    assert fake.customers[customer_id]["tags"] == ["vip"]
    unknown = post(server, TAGS_ADD, {"id": "gid://shopify/Customer/9", "tags": ["vip"]})
    assert unknown.json()["data"]["tagsAdd"]["userErrors"][0]["field"] == ["id"]


def test_scripted_replies_answer_first(server: RunningServer, fake: ShopifyFake) -> None:
    fake.script([503])
    assert post(server, FIND, {"query": 'email:"a@example.com"'}).status_code == 503
    assert post(server, FIND, {"query": 'email:"a@example.com"'}).status_code == 200
