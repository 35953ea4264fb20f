"""The Cordial plugin against its contract fake: the read-then-write flows, what consent may
change on each channel, what it leaves out and why, and how Cordial's answers are read."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cordial_helpers import API_KEY, destination, item
from pydantic import ValidationError

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    FollowUp,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.cordial import CordialDestination, CordialSettings
from crossdock.plugins.cordial.fake import CordialFake
from crossdock.testing.exchange import Exchange, exchange, outcomes
from crossdock.testing.fakeserver import RunningServer


def steps(dest: CordialDestination, *items: Any) -> list[tuple[str, str, int]]:
    """(step, METHOD path, status) of every request an exchange made, in order."""
    return [(ex.planned.step, f"{ex.planned.request.method} {ex.planned.request.url.path}",
             ex.response.status_code)
            for ex in exchange(dest, list(items)) if isinstance(ex, Exchange)]


def existing(fake: CordialFake, email: str = "ada1@example.com", status: str = "subscribed",
             **attributes: Any) -> None:
    fake.contacts[email] = {"_id": "c1", "attributes": dict(attributes),
                            "channels": {"email": {"address": email,
                                                   "subscribeStatus": status}}}


def test_an_identify_creates_a_contact_cordial_does_not_know(
        server: RunningServer, fake: CordialFake) -> None:
    dest = destination(server)
    one = item(1, traits={"email": "ada1@example.com", "firstName": "Ada", "lastName": "L",
                          "plan": "pro"})
    assert steps(dest, one) == [("read", "GET /v2/contacts/email:ada1@example.com", 404),
                                ("create", "POST /v2/contacts", 200)]
    contact = fake.contacts["ada1@example.com"]
    assert contact["channels"]["email"] == {"address": "ada1@example.com",
                                            "subscribeStatus": "subscribed"}
    # Only the mapped traits are sent.
    assert contact["attributes"] == {"first_name": "Ada", "last_name": "L"}
    assert fake.ignored == []


def test_an_identify_updates_a_contact_cordial_knows(
        server: RunningServer, fake: CordialFake) -> None:
    existing(fake, first_name="Old")
    dest = destination(server, mapping={"user_id_attribute": "customer_id"})
    assert steps(dest, item(1)) == [("read", "GET /v2/contacts/email:ada1@example.com", 200),
                                    ("update", "PUT /v2/contacts/email:ada1@example.com", 200)]
    assert fake.contacts["ada1@example.com"]["attributes"] == {"first_name": "Ada",
                                                               "customer_id": "u1"}
    put = fake.received[-1]["body"]
    # Already subscribed: the status is left as it is, not sent again.
    assert put == {"channels": {"email": {"address": "ada1@example.com"}},
                   "first_name": "Ada", "customer_id": "u1"}


@pytest.mark.parametrize(("granted", "current", "force", "expected"), [
    (True, None, False, ("subscribed", False)),           # a new contact
    (True, "none", False, ("subscribed", False)),
    (True, "subscribed", False, (None, False)),           # nothing to change
    (True, "unsubscribed", False, (None, False)),         # their unsubscribe in Cordial holds
    (True, "unsubscribed", True, ("subscribed", True)),   # ... unless the operator forces it
    (False, "subscribed", False, ("unsubscribed", False)),  # consent withdrawn
    (False, None, False, (None, False)),                  # not granted is not always "no"
    (False, "none", False, (None, False)),
    (False, "unsubscribed", True, (None, False)),
])
def test_what_consent_may_change_on_a_channel(
        server: RunningServer, granted: bool, current: str | None, force: bool,
        expected: tuple[str | None, bool]) -> None:
    assert destination(server, force_subscribe=force).status(granted, current) == expected


def test_a_contact_who_unsubscribed_in_cordial_stays_unsubscribed(
        server: RunningServer, fake: CordialFake) -> None:
    existing(fake, status="unsubscribed")
    assert outcomes(destination(server), [item(1)]) == [DELIVERED]
    assert fake.contacts["ada1@example.com"]["channels"]["email"]["subscribeStatus"] == (
        "unsubscribed")
    assert outcomes(destination(server, force_subscribe=True), [item(2, traits={
        "email": "ada1@example.com"})]) == [DELIVERED]
    assert fake.received[-1]["body"]["forceSubscribe"] is True
    assert fake.contacts["ada1@example.com"]["channels"]["email"]["subscribeStatus"] == (
        "subscribed")


def test_withdrawn_consent_unsubscribes_the_channel(
        server: RunningServer, fake: CordialFake) -> None:
    existing(fake)
    one = item(1, consent={"email": False, "sms": False})
    assert outcomes(destination(server), [one]) == [DELIVERED]
    assert fake.contacts["ada1@example.com"]["channels"]["email"]["subscribeStatus"] == (
        "unsubscribed")


def test_the_sms_channel_follows_sms_consent_and_e164(
        server: RunningServer, fake: CordialFake) -> None:
    dest = destination(server, mapping={"phone_region": "US"})
    one = item(1, traits={"email": "ada1@example.com", "phone": "(914) 844-0001"},
               consent={"email": False, "sms": True})
    assert outcomes(dest, [one]) == [DELIVERED]
    channels = fake.contacts["ada1@example.com"]["channels"]
    assert channels["sms"] == {"address": "+19148440001", "subscribeStatus": "subscribed"}
    assert channels["email"] == {"address": "ada1@example.com", "subscribeStatus": "none"}


def test_a_phone_cordial_cannot_use_is_left_out_and_reported(server: RunningServer) -> None:
    one = item(1, traits={"email": "ada1@example.com", "phone": "(914) 844-0001"})
    refused, read = destination(server).build_requests([one])
    assert refused == FieldRefused(one, "channels.sms.address", (
        "left out: a national number (no + or 00 country prefix) and no country to read it "
        "in: set mapping.options.phone_region"))
    assert isinstance(read, PlannedRequest) and read.step == "read"


def test_statuses_are_left_alone_when_the_operator_says_so(
        server: RunningServer, fake: CordialFake) -> None:
    dest = destination(server, mapping={"subscribe_status": False})
    assert outcomes(dest, [item(1)]) == [DELIVERED]
    assert fake.received[-1]["body"]["channels"] == {"email": {"address": "ada1@example.com"}}


def test_a_person_without_an_email_is_a_dead_letter(server: RunningServer) -> None:
    one = item(1, traits={"phone": "+19148440001"})
    assert destination(server).build_requests([one]) == [Rejected(
        one, "email: Cordial keys contacts by email (channels.email.address); this person "
             "has none")]


def test_an_event_is_a_contact_activity(server: RunningServer, fake: CordialFake) -> None:
    existing(fake)
    one = item(1, "track", properties={"sku": "s1", "price": 9.5})
    (request,) = destination(server).build_requests([one])
    assert isinstance(request, PlannedRequest)
    assert json.loads(request.request.content) == {
        "email": "ada1@example.com", "a": "Order Shipped", "ats": "2024-05-01T12:00:00+00:00",
        "properties": {"sku": "s1", "price": 9.5}}
    assert steps(destination(server), one) == [("activity", "POST /v2/contactactivities",
                                                200)]
    assert fake.activities[0]["properties"] == {"sku": "s1", "price": 9.5}


def test_an_event_of_a_contact_cordial_does_not_know_creates_it_first(
        server: RunningServer, fake: CordialFake) -> None:
    one = item(1, "track")
    assert steps(destination(server), one) == [
        ("activity", "POST /v2/contactactivities", 404),
        ("activity-contact", "POST /v2/contacts", 200),
        ("activity-again", "POST /v2/contactactivities", 200)]
    assert fake.contacts["ada1@example.com"]["channels"]["email"]["subscribeStatus"] == (
        "subscribed")
    assert len(fake.activities) == 1


@pytest.mark.parametrize(("event", "reason"), [
    ("x" * 41, f"event: {'x' * 41!r} is longer than Cordial's 40 characters for an action: "
               "shorten it in mapping.event_names"),
    ("open", "event: 'open' is an action Cordial records itself: rename it in "
             "mapping.event_names"),
    (None, "event: missing; a Cordial activity needs an action name"),
])
def test_an_action_cordial_refuses_is_a_dead_letter_naming_the_rule(
        server: RunningServer, event: str | None, reason: str) -> None:
    one = item(1, "track", event=event)
    assert destination(server).build_requests([one]) == [Rejected(one, reason)]


def test_a_property_key_cordial_would_strip_is_left_out_and_reported(
        server: RunningServer) -> None:
    one = item(1, "track", properties={"57": "x", "shoes.color": "red", "ok": 1})
    first, second, request = destination(server).build_requests([one])
    assert {first.field, second.field} == {"properties.57",  # type: ignore[union-attr]
                                           "properties.shoes.color"}
    assert isinstance(request, PlannedRequest)
    assert json.loads(request.request.content)["properties"] == {"ok": 1}


def test_a_contact_created_meanwhile_is_read_again_and_updated(
        server: RunningServer, fake: CordialFake) -> None:
    existing(fake)
    fake.script([404])   # the read answers before the other message's create landed
    assert steps(destination(server), item(1)) == [
        ("read", "GET /v2/contacts/email:ada1@example.com", 404),
        ("create", "POST /v2/contacts", 409),
        ("read", "GET /v2/contacts/email:ada1@example.com", 200),
        ("update", "PUT /v2/contacts/email:ada1@example.com", 200)]


def test_answers_are_classified(server: RunningServer, fake: CordialFake) -> None:
    dest = destination(server)
    fake.script([503, {"status": 429, "body": "slow", "headers": {"Retry-After": "40"}}])
    assert outcomes(dest, [item(1)]) == [Retry("HTTP 503: ", None)]
    assert outcomes(dest, [item(2)]) == [Retry("HTTP 429: slow", 40.0)]
    fake.attributes["first_name"] = "number"
    assert outcomes(dest, [item(3)]) == [Failed(
        'HTTP 400: {"error": true, "message": "first_name: must be a number (the attribute\'s '
        'validator)"}')]
    assert outcomes(destination(server, key="revoked"), [item(4)]) == [Failed(
        'bad credentials (HTTP 401): {"error": true, "message": "invalid API key"}')]


def test_each_step_shares_the_limit_of_its_method_and_endpoint(
        server: RunningServer, fake: CordialFake) -> None:
    keys = [(ex.planned.step, ex.planned.rate_key) for ex in exchange(
        destination(server), [item(1), item(2, "track")]) if isinstance(ex, Exchange)]
    by_step = dict(keys)
    assert by_step["read"].startswith("cordial:GET /contacts/{key}:")
    assert by_step["create"].startswith("cordial:POST /contacts:")
    assert by_step["activity"].startswith("cordial:POST /contactactivities:")
    assert all(API_KEY not in key for _, key in keys)


@pytest.mark.parametrize(("settings", "problem"), [
    ({"api_key": ""}, "must be the API key"),
    ({"api_key": "a:b"}, "without ':'"),
    ({"api_key": "k", "base_url": "https://api.cordial.io"}, "ends in /v2"),
    ({"api_key": "k", "base_url": "https://api.cordial.io/v1"}, "ends in /v2"),
    ({"api_key": "k", "forceSubscribe": True}, "Extra inputs"),
])
def test_validate_refuses_settings_cordial_would_refuse(settings: dict[str, Any],
                                                        problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        CordialSettings.model_validate(settings)
    assert CordialSettings.model_validate(
        {"api_key": "k", "base_url": "https://api.usw2.cordial.io/v2/"}).root == (
        "https://api.usw2.cordial.io/v2")


@pytest.mark.parametrize(("options", "problem"), [
    ({"attributes": {"firstName": "first name"}}, "letters, digits"),
    ({"user_id_attribute": "customer id"}, "an attribute key"),
    ({"phone_region": "Atlantis"}, "not a region"),
    ({"email": []}, "at least one dotted path"),
    ({"atributes": {}}, "did you mean 'attributes'"),
])
def test_validate_names_bad_options(options: dict[str, Any], problem: str) -> None:
    problems = CordialDestination.options_problems(options, "options")
    assert any(problem in p for p in problems), problems


def test_a_contact_deleted_after_it_was_read_is_created(server: RunningServer) -> None:
    dest = destination(server)
    one = item(1)
    update = PlannedRequest(httpx.Request("PUT", server.url + "/v2/contacts/email:x"), [one],
                            "k", "update")
    follow = dest.classify(update, httpx.Response(404, json={"error": True}))
    assert isinstance(follow, FollowUp) and follow.step == "create"
    assert follow.request.method == "POST" and follow.request.url.path == "/v2/contacts"


def test_a_trait_mapped_to_null_is_not_sent(server: RunningServer, fake: CordialFake) -> None:
    dest = destination(server, mapping={"attributes": {"firstName": None, "plan": "plan"}})
    assert outcomes(dest, [item(1, traits={"email": "ada1@example.com", "firstName": "Ada",
                                           "plan": "pro"})]) == [DELIVERED]
    assert fake.contacts["ada1@example.com"]["attributes"] == {"plan": "pro"}


def test_a_read_answered_by_something_else_than_cordial_is_retried(
        server: RunningServer) -> None:
    dest = destination(server)
    read = PlannedRequest(httpx.Request("GET", server.url + "/v2/contacts/email:x"),
                          [item(1)], "k", "read")
    page = httpx.Response(200, text="<html>maintenance</html>")
    assert dest.classify(read, page) == Retry(
        "HTTP 200 without Cordial's contact: <html>maintenance</html>")
