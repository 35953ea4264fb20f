"""The Brevo contract fake over real HTTP: it refuses what Brevo refuses (each rule's source is
on docs/destinations/brevo.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from brevo_helpers import API_KEY

from crossdock.plugins.brevo.fake import BrevoFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, fake_process

ADA = {"email": "ada@example.com", "attributes": {"FIRSTNAME": "Ada"}}
DOI = {"email": "ada@example.com", "includeListIds": [2], "templateId": 11,
       "redirectionUrl": "https://example.com/ok"}


def call(server: RunningServer, method: str, path: str, body: Any = None,
         key: str | None = API_KEY) -> httpx.Response:
    headers = {"api-key": key} if key is not None else {}
    return httpx.request(method, server.url + "/v3" + path, json=body, headers=headers,
                         timeout=10)


def test_create_then_upsert_then_read_a_contact(server: RunningServer, fake: BrevoFake) -> None:
    created = call(server, "POST", "/contacts", {**ADA, "listIds": [2]})
    assert created.status_code == 201 and created.json() == {"id": 1}
    updated = call(server, "POST", "/contacts", {
        "email": "ADA@example.com", "attributes": {"LASTNAME": "Lovelace"}, "listIds": [3],
        "emailBlacklisted": True, "updateEnabled": True})
    assert updated.status_code == 204 and updated.content == b""
    contact = call(server, "GET", "/contacts/ada%40example.com").json()
    assert contact["attributes"] == {"FIRSTNAME": "Ada", "LASTNAME": "Lovelace"}
    assert contact["listIds"] == [2, 3] and contact["emailBlacklisted"] is True
    assert call(server, "GET", "/contacts/1").json()["email"] == "ada@example.com"
    missing = call(server, "GET", "/contacts/nobody%40example.com")
    assert missing.status_code == 404
    assert missing.json() == {"code": "document_not_found", "message": "Contact does not exist"}


def test_a_value_that_does_not_match_the_attribute_type_is_ignored(
        server: RunningServer, fake: BrevoFake) -> None:
    answer = call(server, "POST", "/contacts", {
        "email": "a@b.co", "attributes": {"LIFETIME_VALUE": "lots", "BIRTHDAY": "someday",
                                          "VIP": "yes", "PLAN": "pro"}})
    assert answer.status_code == 201
    assert fake.by_email("a@b.co")["attributes"] == {"PLAN": "pro"}  # type: ignore[index]
    assert fake.ignored == ["LIFETIME_VALUE", "BIRTHDAY", "VIP"]


@pytest.mark.parametrize(("path", "body", "key", "status", "code", "message"), [
    ("/contacts", ADA, None, 401, "unauthorized", "Key not found"),
    ("/contacts", ADA, "xkeysib-wrong", 401, "unauthorized", "Key not found"),
    ("/contacts", {"attributes": {"FIRSTNAME": "x"}}, API_KEY, 400, "missing_parameter",
     "email, ext_id or attributes.SMS"),
    ("/contacts", {"email": "nope"}, API_KEY, 400, "invalid_parameter", "Invalid email"),
    ("/contacts", {"email": "a@b.co", "attributes": {"firstname": "x"}}, API_KEY, 400,
     "invalid_parameter", "Attribute firstname does not exist"),
    ("/contacts", {"attributes": {"SMS": "0612345678"}}, API_KEY, 400, "invalid_parameter",
     "country code"),
    ("/contacts", {"email": "a@b.co", "listIds": [99]}, API_KEY, 404, "document_not_found",
     "List ID 99"),
    ("/contacts", {"email": "a@b.co", "listIds": ["2"]}, API_KEY, 400, "invalid_parameter",
     "list of integers"),
    ("/contacts", {"email": "a@b.co", "emailBlacklisted": "yes"}, API_KEY, 400,
     "invalid_parameter", "boolean"),
    ("/contacts", ["not", "an", "object"], API_KEY, 400, "bad_request", "JSON object"),
    ("/contacts/doubleOptinConfirmation", {**DOI, "templateId": 12}, API_KEY, 404,
     "document_not_found", "double opt-in template"),
    ("/contacts/doubleOptinConfirmation", {**DOI, "includeListIds": []}, API_KEY, 400,
     "missing_parameter", "includeListIds"),
    ("/contacts/doubleOptinConfirmation", {k: v for k, v in DOI.items()
                                           if k != "redirectionUrl"}, API_KEY, 400,
     "missing_parameter", "redirectionUrl"),
    ("/contacts/doubleOptinConfirmation", {**DOI, "redirectionUrl": "ok"}, API_KEY, 400,
     "invalid_parameter", "URL"),
    ("/events", {"identifiers": {"email_id": "a@b.co"}}, API_KEY, 400, "missing_parameter",
     "event_name"),
    ("/events", {"event_name": "Order Completed", "identifiers": {"email_id": "a@b.co"}},
     API_KEY, 400, "invalid_parameter", "alphanumeric"),
    ("/events", {"event_name": "x" * 256, "identifiers": {"email_id": "a@b.co"}}, API_KEY,
     400, "invalid_parameter", "255"),
    ("/events", {"event_name": "signed_up", "identifiers": {}}, API_KEY, 400,
     "missing_parameter", "at least one identifier"),
    ("/events", {"event_name": "signed_up", "identifiers": {"email": "a@b.co"}}, API_KEY,
     400, "missing_parameter", "at least one identifier"),
    ("/events", {"event_name": "signed_up", "identifiers": {"email_id": "a@b.co"},
                 "event_date": "yesterday"}, API_KEY, 400, "invalid_parameter", "ISO 8601"),
    ("/events", {"event_name": "signed_up", "identifiers": {"email_id": "a@b.co"},
                 "event_properties": {"cart": {"shoes.color": "red"}}}, API_KEY, 400,
     "invalid_parameter", "'shoes.color'"),
    ("/events", {"event_name": "signed_up", "identifiers": {"email_id": "a@b.co"},
                 "event_properties": {"blob": "x" * 52_000}}, API_KEY, 400,
     "invalid_parameter", "50 KB"),
])
def test_refusals(server: RunningServer, fake: BrevoFake, path: str, body: Any,
                  key: str | None, status: int, code: str, message: str) -> None:
    answer = call(server, "POST", path, body, key)
    assert answer.status_code == status
    assert answer.json()["code"] == code
    assert message in answer.json()["message"]
    assert fake.contacts == {} and fake.events == [] and fake.doi_sent == []


def test_an_existing_contact_is_a_duplicate_without_update_enabled(
        server: RunningServer, fake: BrevoFake) -> None:
    call(server, "POST", "/contacts", {**ADA, "attributes": {"SMS": "+33612345678"}})
    again = call(server, "POST", "/contacts", ADA)
    assert again.status_code == 400 and again.json()["code"] == "duplicate_parameter"
    # An SMS number is an identifier too: another contact cannot take it.
    other = call(server, "POST", "/contacts", {"email": "bo@example.com", "updateEnabled": True,
                                               "attributes": {"SMS": "+33612345678"}})
    assert other.status_code == 400 and other.json()["code"] == "duplicate_parameter"
    assert len(fake.contacts) == 1


def test_double_opt_in_sends_the_email_and_the_lists_wait_for_the_confirmation(
        server: RunningServer, fake: BrevoFake) -> None:
    answer = call(server, "POST", "/contacts/doubleOptinConfirmation",
                  {**DOI, "attributes": {"FIRSTNAME": "Ada"}})
    assert answer.status_code == 201
    assert fake.contacts == {}
    (sent,) = fake.doi_sent
    assert sent["templateId"] == 11 and sent["includeListIds"] == [2]
    contact = fake.confirm("ada@example.com")
    assert contact["listIds"] == [2] and contact["attributes"] == {"FIRSTNAME": "Ada"}
    # For a contact Brevo knows, the confirmation is sent again and the answer is 204.
    assert call(server, "POST", "/contacts/doubleOptinConfirmation", DOI).status_code == 204


def test_an_event_is_recorded(server: RunningServer, fake: BrevoFake) -> None:
    answer = call(server, "POST", "/events", {
        "event_name": "order-shipped_2", "identifiers": {"email_id": "a@b.co"},
        "event_date": "2024-05-01T12:00:00Z",
        "event_properties": {"sku": "s1", "items": [{"price-eur": 9}]}})
    assert answer.status_code == 204 and answer.content == b""
    (event,) = fake.events
    assert event["event_name"] == "order-shipped_2"
    assert event["event_properties"]["items"] == [{"price-eur": 9}]


def test_rate_limits_are_per_bucket_per_second_and_per_hour(
        server: RunningServer, fake: BrevoFake, clock: ManualClock) -> None:
    fake.rate_limits = {"contacts": (2, 3), "events": (1, 100)}
    answers = [call(server, "GET", "/contacts/a%40b.co") for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[0].headers["x-sib-ratelimit-limit"] == "2"
    assert answers[1].headers["x-sib-ratelimit-remaining"] == "0"
    throttled = answers[2]
    assert throttled.headers["x-sib-ratelimit-reset"] == "1"
    assert "retry-after" not in throttled.headers
    assert throttled.json()["code"] == "too_many_requests"
    # Every /v3/contacts endpoint shares the bucket; /v3/events has its own.
    assert call(server, "POST", "/contacts", ADA).status_code == 429
    event = {"event_name": "x", "identifiers": {"email_id": "a@b.co"}}
    assert call(server, "POST", "/events", event).status_code == 204
    # The next second starts afresh, until the hour's 3 are spent.
    clock.advance(1.0)
    assert call(server, "POST", "/contacts", ADA).status_code == 201
    hourly = call(server, "GET", "/contacts/a%40b.co")
    assert hourly.status_code == 429
    assert int(hourly.headers["x-sib-ratelimit-reset"]) > 1


def test_scripted_replies_answer_first(server: RunningServer, fake: BrevoFake) -> None:
    fake.script([503])
    assert call(server, "POST", "/contacts", ADA).status_code == 503
    assert call(server, "POST", "/contacts", ADA).status_code == 201
    assert fake.statuses() == [503, 201]


def test_the_fake_runs_on_its_own() -> None:
    with fake_process("crossdock.plugins.brevo.fake", "--api-key", "xkeysib-k") as proc:
        assert "Brevo fake on" in proc.banner
        answer = httpx.get(proc.url + "/v3/contacts/a%40b.co", headers={"api-key": "xkeysib-k"})
        assert answer.status_code == 404
