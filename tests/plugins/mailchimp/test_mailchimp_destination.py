"""mailchimp: settings, build_requests and classify, pure."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest
from mailchimp_helpers import audience, destination, item
from pydantic import ValidationError

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    Planned,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.mailchimp import MailchimpSettings
from crossdock.plugins.mailchimp.destination import (
    event_name,
    event_properties,
    problem_outcome,
    subscriber_hash,
)
from crossdock.plugins.mailchimp.fake import DEFAULT_KEY


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def body(planned: Planned) -> dict[str, Any]:
    assert isinstance(planned, PlannedRequest)
    data: dict[str, Any] = json.loads(planned.request.content)
    return data


def requests(planned: list[Planned]) -> list[tuple[str, str]]:
    return [(p.request.method, p.request.url.path) for p in planned
            if isinstance(p, PlannedRequest)]


def test_data_centre_comes_from_the_key() -> None:
    dest = destination()
    (planned,) = dest.build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    assert str(planned.request.url).startswith("https://us1.api.mailchimp.com/3.0/lists/")
    user, _, key = base64.b64decode(
        planned.request.headers["authorization"].removeprefix("Basic ")).decode().partition(":")
    assert key == DEFAULT_KEY and user
    bearer = destination(auth="bearer").build_requests([item(1)])[0]
    assert isinstance(bearer, PlannedRequest)
    assert bearer.request.headers["authorization"] == f"Bearer {DEFAULT_KEY}"


def test_settings_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="api_key: must end in -<data centre>"):
        MailchimpSettings.model_validate({"api_key": "nodatacentre", "list_id": "x"})
    with pytest.raises(ValidationError, match="merge tags are 1-10 upper-case"):
        MailchimpSettings.model_validate({"api_key": "k-us2", "list_id": "x",
                                          "merge_fields": {"firstName": "first name"}})
    # base_url (the fake, a proxy) makes the suffix unnecessary.
    ok = MailchimpSettings.model_validate({"api_key": "k", "list_id": "x",
                                           "base_url": "http://127.0.0.1:1/3.0"})
    assert ok.api_root == "http://127.0.0.1:1/3.0"


def test_subscriber_hash_is_md5_of_trimmed_lower_email() -> None:
    assert subscriber_hash("  Ann@Example.COM ") == md5("ann@example.com")


def test_identify_is_an_upsert_with_merge_fields() -> None:
    dest = destination()
    traits = {"email": " Ann@Example.com", "firstName": "Ann", "last_name": "Lee",
              "phone": "+1 650 555 0100", "birthDate": "1990-07-04",
              "address": {"street": "1 Main St", "city": "Springfield", "state": "IL",
                          "postalCode": "62701", "country": "US"}}
    (planned,) = dest.build_requests([item(1, traits=traits)])
    assert requests([planned]) == [("PUT", f"/3.0/lists/a1b2c3d4e5/members/"
                                           f"{md5('ann@example.com')}")]
    assert body(planned) == {
        "email_address": "Ann@Example.com", "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Ann", "LNAME": "Lee", "PHONE": "+1 650 555 0100",
                         "BIRTHDAY": "07/04",
                         "ADDRESS": {"addr1": "1 Main St", "city": "Springfield",
                                     "state": "IL", "zip": "62701", "country": "US"}}}


@pytest.mark.parametrize(("double", "traits", "context", "expected"), [
    (False, {}, {}, {"status_if_new": "subscribed"}),
    (True, {}, {}, {"status_if_new": "pending"}),
    (False, {"emailOptIn": True}, {}, {"status_if_new": "subscribed", "status": "subscribed"}),
    (True, {"emailOptIn": True}, {}, {"status_if_new": "pending"}),
    (False, {"emailOptIn": False}, {}, {"status_if_new": "unsubscribed",
                                        "status": "unsubscribed"}),
    (False, {"emailOptIn": "false"}, {}, {"status_if_new": "unsubscribed",
                                          "status": "unsubscribed"}),
    (False, {}, {"consent": {"categoryPreferences": {"email": False}}},
     {"status_if_new": "unsubscribed", "status": "unsubscribed"}),
])
def test_opt_in_sets_the_status(double: bool, traits: dict[str, Any],
                                context: dict[str, Any], expected: dict[str, str]) -> None:
    dest = destination(double_opt_in=double)
    (planned,) = dest.build_requests([item(1, traits={"email": "a@example.com", **traits},
                                           context=context)])
    sent = body(planned)
    assert {k: v for k, v in sent.items() if k.startswith("status")} == expected


def test_two_definite_statuses_go_through_batch_subscribe() -> None:
    dest = destination()
    opted = [item(n, traits={"email": f"p{n}@example.com", "emailOptIn": n % 2 == 0,
                             "firstName": f"P{n}"}) for n in range(1, 4)]
    undecided = item(9)
    planned = dest.build_requests([*opted, undecided])
    assert requests(planned) == [("POST", "/3.0/lists/a1b2c3d4e5"),
                                 ("PUT", f"/3.0/lists/a1b2c3d4e5/members/"
                                         f"{md5('person9@example.com')}")]
    sent = body(planned[0])
    assert sent["update_existing"] is True
    assert sent["members"] == [
        {"email_address": "p1@example.com", "status": "unsubscribed",
         "merge_fields": {"FNAME": "P1"}},
        {"email_address": "p2@example.com", "status": "subscribed",
         "merge_fields": {"FNAME": "P2"}},
        {"email_address": "p3@example.com", "status": "unsubscribed",
         "merge_fields": {"FNAME": "P3"}}]
    assert [p.items for p in planned if isinstance(p, PlannedRequest)] == [opted, [undecided]]


def test_batch_subscribe_takes_500_members_a_call() -> None:
    dest = destination()
    items = [item(n, traits={"email": f"p{n}@example.com", "emailOptIn": True})
             for n in range(1, 501)]
    assert len(dest.build_requests(items)) == 1
    planned = dest.build_requests([*items, item(501, traits={"email": "x@example.com",
                                                             "emailOptIn": True})])
    assert [len(body(p)["members"]) for p in planned] == [500, 1]


def test_identifies_of_one_member_merge_into_one_upsert() -> None:
    dest = destination()
    first = item(1, traits={"email": "a@example.com", "firstName": "A"})
    second = item(2, traits={"email": "A@example.com ", "lastName": "B", "emailOptIn": False})
    (planned,) = dest.build_requests([first, second])
    assert body(planned)["merge_fields"] == {"FNAME": "A", "LNAME": "B"}
    assert body(planned)["status"] == "unsubscribed"
    assert isinstance(planned, PlannedRequest) and planned.items == [first, second]


def test_audience_changes_are_tags_after_the_upserts() -> None:
    dest = destination(tag_prefix="cd:")
    planned = dest.build_requests([audience(1), item(1), audience(1, False, "churn_risk"),
                                   audience(1, False), audience(2)])
    assert requests(planned) == [
        ("PUT", f"/3.0/lists/a1b2c3d4e5/members/{md5('person1@example.com')}"),
        ("POST", f"/3.0/lists/a1b2c3d4e5/members/{md5('person1@example.com')}/tags"),
        ("POST", f"/3.0/lists/a1b2c3d4e5/members/{md5('person2@example.com')}/tags")]
    # entered then exited high_value in one batch: the exit wins.
    assert body(planned[1]) == {"tags": [{"name": "cd:churn_risk", "status": "inactive"},
                                         {"name": "cd:high_value", "status": "inactive"}]}
    assert body(planned[2]) == {"tags": [{"name": "cd:high_value", "status": "active"}]}


def test_other_track_events_are_member_events() -> None:
    dest = destination()
    one = item(1, "track", "Order Completed!", properties={
        "total": 42.5, "paid": True, "items": [1, 2], "coupon": None, "order id": "A-1"})
    (planned,) = dest.build_requests([one])
    assert requests([planned])[0] == (
        "POST", f"/3.0/lists/a1b2c3d4e5/members/{md5('person1@example.com')}/events")
    assert body(planned) == {"name": "Order_Completed", "occurred_at":
                             "2024-05-01T12:00:00+00:00",
                             "properties": {"total": "42.5", "paid": "true", "items": "[1,2]",
                                            "order_id": "A-1"}}


@pytest.mark.parametrize(("raw", "expected"), [
    ("Order Completed", "Order_Completed"),
    ("signup.v2 -- done", "signup_v2_--_done"),
    ("x" * 40, "x" * 30),
    ("a" * 29 + " b", "a" * 29),
    ("Café crème", "Caf_cr_me"),
])
def test_event_names(raw: str, expected: str) -> None:
    assert event_name(raw) == expected


def test_rejections_name_the_rule() -> None:
    dest = destination()
    planned = dest.build_requests([
        item(1, traits={}),
        item(2, "track", "!"),
        item(5, "track", "audience_entered", properties={}),
        item(6, "page"),
        item(7, traits={"email": "c@example.com", "subscriptionStatus": "unsubscibed"}),
    ])
    reasons = {p.item.id: p.reason for p in planned if isinstance(p, Rejected)}
    assert reasons[1].startswith("no email: Mailchimp members are keyed by email")
    assert "must have 2-30 letters, digits, _ or -" in reasons[2]
    assert reasons[5].startswith("properties.audience:")
    assert reasons[6] == "mailchimp takes identify and track messages, got page"
    assert reasons[7] == ("traits.subscriptionStatus: a subscription status is one of "
                          "cleaned, pending, subscribed, transactional, unsubscribed, got "
                          "'unsubscibed'")


def test_a_merge_field_mailchimp_cannot_take_is_left_out_and_the_member_kept() -> None:
    # A bad birthday or half an address used to send the whole member to the dead letters.
    dest = destination()
    bad_birthday = item(3, traits={"email": "a@example.com", "firstName": "A",
                                   "birthDate": "July 4th"})
    half_address = item(4, traits={"email": "b@example.com",
                                   "address": {"street": "1 Main St", "city": "X"}})
    refused_birthday, refused_address, *upserts = dest.build_requests(
        [bad_birthday, half_address])
    assert refused_birthday == FieldRefused(
        bad_birthday, "BIRTHDAY",
        "traits.birthDate: a birthday is MM/DD or a date of birth (a date with a month name "
        "needs a day and a four-digit year)")
    assert refused_address == FieldRefused(
        half_address, "ADDRESS", "traits.address: ADDRESS needs state, zip as well")
    assert body(upserts[0])["merge_fields"] == {"FNAME": "A"}
    assert "merge_fields" not in body(upserts[1])
    assert [p.items for p in upserts if isinstance(p, PlannedRequest)] == [[bad_birthday],
                                                                           [half_address]]


@pytest.mark.parametrize(("traits", "expected"), [
    # Segment's address object
    ({"address": {"street": "1 Main St", "city": "Springfield", "state": "IL",
                  "postal_code": "62701"}},
     {"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}),
    # flat traits: mParticle's $Address, $City, ... arrive as address, city, state, zip
    ({"address": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701",
      "country": "US"},
     {"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701",
      "country": "US"}),
    ({"street": "1 Main St", "addr2": "Apt 4", "city": "Springfield", "region": "IL",
      "postalCode": "62701"},
     {"addr1": "1 Main St", "addr2": "Apt 4", "city": "Springfield", "state": "IL",
      "zip": "62701"}),
])
def test_the_address_merge_field_from_an_address_object_or_flat_traits(
        traits: dict[str, Any], expected: dict[str, str]) -> None:
    (planned,) = destination().build_requests([item(1, traits={"email": "a@x.com", **traits})])
    assert body(planned)["merge_fields"] == {"ADDRESS": expected}


def test_a_city_alone_is_no_address_and_no_problem() -> None:
    out = destination().build_requests([item(1, traits={"email": "a@x.com", "city": "Rome"})])
    assert len(out) == 1 and "merge_fields" not in body(out[0])


def test_any_trait_mapped_to_a_merge_tag_is_sent_as_text() -> None:
    dest = destination(merge_fields={"plan": "PLAN", "seats": "SEATS", "prefs": "PREFS"})
    (planned,) = dest.build_requests([item(1, traits={
        "email": "a@x.com", "plan": "pro", "seats": 3, "prefs": {"news": True}})])
    # An object under another tag is JSON text, not an address (which refused the member).
    assert body(planned)["merge_fields"] == {"PLAN": "pro", "SEATS": "3",
                                             "PREFS": '{"news":true}'}


@pytest.mark.parametrize(("traits", "rendered", "expected"), [
    ({"subscriptionStatus": "unsubscribed"}, {},
     {"status_if_new": "unsubscribed", "status": "unsubscribed"}),
    ({"subscriptionStatus": " Pending "}, {}, {"status_if_new": "pending", "status": "pending"}),
    ({"subscriptionStatus": "transactional", "emailOptIn": True}, {},
     {"status_if_new": "transactional", "status": "transactional"}),
    ({"emailOptIn": True}, {"status": "cleaned"},
     {"status_if_new": "cleaned", "status": "cleaned"}),
])
def test_a_stated_subscription_status_changes_new_and_existing_members(
        traits: dict[str, Any], rendered: dict[str, Any], expected: dict[str, str]) -> None:
    # The message's own status wins over the opt-in reading, and goes in `status` as well as
    # `status_if_new`, so an existing member changes too.
    (planned,) = destination(double_opt_in=True).build_requests(
        [item(1, traits={"email": "a@x.com", **traits}, rendered=rendered)])
    assert {k: v for k, v in body(planned).items() if k.startswith("status")} == expected


def test_a_bad_status_template_is_named_by_its_path() -> None:
    (rejected,) = destination().build_requests(
        [item(1, traits={"email": "a@x.com"}, rendered={"status": "yes"})])
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("mapping.templates.status: a subscription status is")


def test_upserts_skip_merge_validation_unless_told_not_to() -> None:
    items = [item(n, traits={"email": f"p{n}@x.com", "subscriptionStatus": "subscribed"})
             for n in (1, 2)]
    (batch,) = destination().build_requests(items)
    (put,) = destination().build_requests([item(3)])
    assert isinstance(batch, PlannedRequest) and isinstance(put, PlannedRequest)
    assert batch.request.url.params["skip_merge_validation"] == "true"
    assert put.request.url.params["skip_merge_validation"] == "true"
    (strict,) = destination(skip_merge_validation=False).build_requests([item(3)])
    assert isinstance(strict, PlannedRequest) and "skip_merge_validation" not in \
        strict.request.url.params


def test_event_properties_are_strings() -> None:
    assert event_properties({"a.b": 1, "ok": False, "n": None}) == {"a_b": "1", "ok": "false"}


def problem(status: int, title: str, detail: str = "d",
            headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"type": "t", "title": title, "status": status,
                                        "detail": detail, "instance": "i"},
                          headers={"content-type": "application/problem+json",
                                   **(headers or {})})


@pytest.mark.parametrize(("response", "expected"), [
    (problem(429, "Too Many Requests", "slow", {"Retry-After": "5"}),
     Retry("mailchimp 429 Too Many Requests: slow", 5.0)),
    (problem(500, "Internal Server Error"), Retry("mailchimp 500 Internal Server Error: d")),
    (problem(503, "Service Unavailable"), Retry("mailchimp 503 Service Unavailable: d")),
    (problem(401, "API Key Invalid"), Failed("mailchimp 401 API Key Invalid: d")),
    (problem(403, "Forbidden"), Failed("mailchimp 403 Forbidden: d")),
    (problem(404, "Resource Not Found"), Failed("mailchimp 404 Resource Not Found: d")),
    (problem(400, "Invalid Resource", "bad email"),
     Failed("mailchimp 400 Invalid Resource: bad email")),
    (problem(400, "Member In Compliance State"),
     Failed("mailchimp 400 Member In Compliance State: d")),
    (problem(400, "Forgotten Email Not Subscribed"),
     Failed("mailchimp 400 Forgotten Email Not Subscribed: d")),
    (httpx.Response(502, text="bad gateway"), Retry("mailchimp HTTP 502: bad gateway")),
])
def test_classify_problems(response: httpx.Response, expected: object) -> None:
    assert problem_outcome(response) == expected


def test_batch_subscribe_outcomes_per_member() -> None:
    dest = destination()
    items = [item(n, traits={"email": f"P{n}@example.com", "emailOptIn": True})
             for n in range(1, 5)]
    (planned,) = dest.build_requests(items)
    assert isinstance(planned, PlannedRequest)
    response = httpx.Response(200, json={
        "new_members": [{"email_address": "p1@example.com"}],
        "updated_members": [{"email_address": "P2@example.com"}],
        "errors": [{"email_address": "p3@example.com", "error": "looks fake",
                    "error_code": "ERROR_GENERIC"}]})
    assert dest.classify(planned, response) == [
        DELIVERED, DELIVERED, Failed("mailchimp batch subscribe: looks fake (ERROR_GENERIC)"),
        Retry("mailchimp batch subscribe: member missing from the reply")]
    assert dest.classify(planned, problem(500, "Internal Server Error")) == \
        Retry("mailchimp 500 Internal Server Error: d")
