"""The Cordial contract fake over real HTTP: it refuses what Cordial refuses (each rule's source
is on docs/destinations/cordial.md)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cordial_helpers import API_KEY

from crossdock.plugins.cordial.fake import CordialFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, fake_process

CONTACT = {"channels": {"email": {"address": "ada@example.com",
                                  "subscribeStatus": "subscribed"}},
           "first_name": "Ada"}


def auth(key: str = API_KEY, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


def call(server: RunningServer, method: str, path: str, body: Any = None,
         authorization: str | None = None) -> httpx.Response:
    headers = {"authorization": authorization or auth()}
    return httpx.request(method, server.url + "/v2" + path, json=body, headers=headers,
                         timeout=10)


def test_create_read_and_update_a_contact(server: RunningServer, fake: CordialFake) -> None:
    assert call(server, "GET", "/contacts/email:ada@example.com").status_code == 404
    created = call(server, "POST", "/contacts", CONTACT)
    assert created.status_code == 200 and created.json()["success"] is True
    contact = call(server, "GET", "/contacts/email:ada@example.com").json()
    assert contact["channels"]["email"] == {"address": "ada@example.com",
                                            "subscribeStatus": "subscribed"}
    assert contact["attributes"] == {"first_name": "Ada"}
    updated = call(server, "PUT", "/contacts/email:ada@example.com",
                   {"plan": "pro", "channels": {"sms": {"address": "+19148440001"}}})
    assert updated.status_code == 200
    contact = call(server, "GET", f"/contacts/{contact['_id']}").json()
    assert contact["attributes"] == {"first_name": "Ada", "plan": "pro"}
    assert contact["channels"]["sms"] == {"address": "+19148440001", "subscribeStatus": "none"}


def test_an_attribute_the_account_does_not_define_is_ignored(
        server: RunningServer, fake: CordialFake) -> None:
    assert call(server, "POST", "/contacts", {**CONTACT, "shoe_size": 42}).status_code == 200
    assert fake.contacts["ada@example.com"]["attributes"] == {"first_name": "Ada"}
    assert fake.ignored == ["shoe_size"]


def test_resubscribing_an_unsubscribed_contact_needs_force_subscribe(
        server: RunningServer, fake: CordialFake) -> None:
    call(server, "POST", "/contacts", CONTACT)
    out = {"channels": {"email": {"subscribeStatus": "unsubscribed"}}}
    assert call(server, "PUT", "/contacts/email:ada@example.com", out).status_code == 200
    back = {"channels": {"email": {"subscribeStatus": "subscribed"}}}
    refused = call(server, "PUT", "/contacts/email:ada@example.com", back)
    assert refused.status_code == 400
    assert "needs forceSubscribe: true" in refused.json()["message"]
    # A refused change changes nothing.
    assert fake.contacts["ada@example.com"]["channels"]["email"]["subscribeStatus"] == (
        "unsubscribed")
    forced = call(server, "PUT", "/contacts/email:ada@example.com",
                  {**back, "forceSubscribe": True})
    assert forced.status_code == 200
    assert fake.contacts["ada@example.com"]["channels"]["email"]["subscribeStatus"] == (
        "subscribed")


def test_an_activity_is_recorded_for_its_contact_with_cordials_key_rules(
        server: RunningServer, fake: CordialFake) -> None:
    call(server, "POST", "/contacts", CONTACT)
    answer = call(server, "POST", "/contactactivities", {
        "email": "ada@example.com", "a": "browse", "ats": "2024-05-01T12:00:00Z",
        "properties": {"sku": "s1", "57": "x", "shoes.color": "red"}})
    assert answer.status_code == 200
    (activity,) = fake.activities
    assert activity["a"] == "browse" and activity["properties"] == {"sku": "s1"}
    assert fake.stripped == ["57", "shoes.color"]


@pytest.mark.parametrize(("method", "path", "body", "authorization", "status", "message"), [
    ("GET", "/contacts/email:a@b.co", None, "Bearer x", 401, "Basic authentication"),
    ("GET", "/contacts/email:a@b.co", None, auth("wrong"), 401, "invalid API key"),
    ("GET", "/contacts/email:a@b.co", None, "Basic !!!", 401, "unreadable"),
    ("POST", "/contacts", {"first_name": "x"}, None, 400, "channels.email.address"),
    ("POST", "/contacts", {"channels": {"email": {"address": "nope"}}}, None, 400,
     "a valid email"),
    ("POST", "/contacts", {"channels": {"email": {"address": "a@b.co",
                                                  "subscribeStatus": "maybe"}}}, None, 400,
     "one of none, subscribed, unsubscribed"),
    ("POST", "/contacts", {"channels": {"email": {"address": "a@b.co"},
                                        "push": {"address": "x"}}}, None, 400, "not a channel"),
    ("POST", "/contacts", {"channels": {"email": {"address": "a@b.co"},
                                        "sms": {"address": "call me"}}}, None, 400,
     "a phone number"),
    ("POST", "/contacts", {"channels": {"email": {"address": "a@b.co"}},
                           "lifetime_value": "lots"}, None, 400, "must be a number"),
    ("POST", "/contacts", {"channels": {"email": {"address": "a@b.co"}},
                           "birthday": "someday"}, None, 400, "must be a date"),
    ("POST", "/contacts", ["not an object"], None, 400, "JSON object"),
    ("PUT", "/contacts/email:nobody@b.co", {"plan": "x"}, None, 404, "contact not found"),
    ("POST", "/contactactivities", {"email": "a@b.co"}, None, 400, "action name is required"),
    ("POST", "/contactactivities", {"email": "a@b.co", "a": "x" * 41}, None, 400,
     "at most 40"),
    ("POST", "/contactactivities", {"email": "a@b.co", "a": "open"}, None, 400,
     "'open' is a reserved action"),
    ("POST", "/contactactivities", {"a": "browse"}, None, 400, "email or cID"),
    ("POST", "/contactactivities", {"email": "nobody@b.co", "a": "browse"}, None, 404,
     "contact not found"),
])
def test_refusals(server: RunningServer, method: str, path: str, body: Any,
                  authorization: str | None, status: int, message: str) -> None:
    answer = call(server, method, path, body, authorization)
    assert answer.status_code == status
    assert message in answer.json()["message"]


def test_creating_an_existing_contact_is_a_conflict(server: RunningServer) -> None:
    assert call(server, "POST", "/contacts", CONTACT).status_code == 200
    again = call(server, "POST", "/contacts", CONTACT)
    assert again.status_code == 409 and "already exists" in again.json()["message"]


def test_an_activity_with_a_bad_timestamp_is_refused(server: RunningServer) -> None:
    call(server, "POST", "/contacts", CONTACT)
    answer = call(server, "POST", "/contactactivities",
                  {"email": "ada@example.com", "a": "browse", "ats": "yesterday"})
    assert answer.status_code == 400 and "ISO 8601" in answer.json()["message"]


def test_rate_limits_are_per_method_and_endpoint_per_minute(
        server: RunningServer, fake: CordialFake, clock: ManualClock) -> None:
    fake.rate_limits = {"GET /v2/contacts/{key}": 2}
    answers = [call(server, "GET", "/contacts/email:a@b.co") for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[0].headers["X-Rate-Limit-Limit"] == "2"
    assert answers[1].headers["X-Rate-Limit-Remaining"] == "0"
    throttled = answers[2]
    assert throttled.headers["Retry-After"] == throttled.headers["X-Rate-Limit-Reset"] == "40"
    # POST /contacts is not limited by the reads' limit; the next minute starts afresh.
    assert call(server, "POST", "/contacts", CONTACT).status_code == 200
    clock.advance(40)
    assert call(server, "GET", "/contacts/email:a@b.co").status_code == 404


def test_scripted_replies_answer_first(server: RunningServer, fake: CordialFake) -> None:
    fake.script([503])
    assert call(server, "POST", "/contacts", CONTACT).status_code == 503
    assert call(server, "POST", "/contacts", CONTACT).status_code == 200
    assert fake.statuses() == [503, 200]


def test_the_fake_runs_on_its_own() -> None:
    with fake_process("crossdock.plugins.cordial.fake", "--api-key", "k") as proc:
        assert "Cordial fake on" in proc.banner
        answer = httpx.get(proc.url + "/v2/contacts/email:a@b.co",
                           headers={"authorization": auth("k")})
        assert answer.status_code == 404
