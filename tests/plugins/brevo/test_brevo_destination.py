"""The Brevo plugin against its contract fake: the upsert, what consent changes (lists and
blacklists), double opt-in, events, what it leaves out and why, and how Brevo's answers are
read."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from brevo_helpers import API_KEY, DOI, destination, item

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.brevo import BrevoDestination
from crossdock.plugins.brevo.fake import BrevoFake
from crossdock.testing.exchange import Exchange, exchange, outcomes
from crossdock.testing.fakeserver import RunningServer


def steps(dest: BrevoDestination, *items: Any) -> list[tuple[str, str, int]]:
    """(step, METHOD path, status) of every request an exchange made, in order."""
    return [(ex.planned.step,
             f"{ex.planned.request.method} {ex.planned.request.url.raw_path.decode()}",
             ex.response.status_code)
            for ex in exchange(dest, list(items)) if isinstance(ex, Exchange)]


def sent(fake: BrevoFake) -> Any:
    return fake.received[-1]["body"]


def test_an_identify_is_one_upsert_by_email(server: RunningServer, fake: BrevoFake) -> None:
    dest = destination(server, list_ids=[2, 3])
    one = item(1, traits={"email": "ada1@example.com", "firstName": "Ada", "lastName": "L",
                          "plan": "pro"})
    assert steps(dest, one) == [("upsert", "POST /v3/contacts", 201)]
    # Only the mapped traits, under their upper-case attribute names; the lists because the
    # email consent is granted; SMS not granted: blacklisted.
    assert sent(fake) == {"email": "ada1@example.com",
                          "attributes": {"FIRSTNAME": "Ada", "LASTNAME": "L"},
                          "listIds": [2, 3], "smsBlacklisted": True, "updateEnabled": True}
    assert fake.received[-1]["headers"]["api-key"] == API_KEY
    # The same identify again updates the contact (204): safe to repeat.
    assert steps(dest, one) == [("upsert", "POST /v3/contacts", 204)]
    assert len(fake.contacts) == 1


def test_email_consent_not_granted_blacklists_and_joins_no_list(
        server: RunningServer, fake: BrevoFake) -> None:
    dest = destination(server, list_ids=[2])
    assert outcomes(dest, [item(1, consent={"email": False, "sms": True})]) == [DELIVERED]
    body = sent(fake)
    assert "listIds" not in body and body["emailBlacklisted"] is True
    assert "smsBlacklisted" not in body  # granted: Brevo's own flag is left as it is
    contact = fake.by_email("ada1@example.com")
    assert contact is not None and contact["emailBlacklisted"] is True
    assert contact["listIds"] == []


def test_a_contact_who_unsubscribed_in_brevo_stays_so_unless_resubscribe(
        server: RunningServer, fake: BrevoFake) -> None:
    outcomes(destination(server), [item(1, consent={"email": False, "sms": False})])
    assert outcomes(destination(server), [item(2, traits={"email": "ada1@example.com"})]) == [
        DELIVERED]
    assert "emailBlacklisted" not in sent(fake)
    assert fake.by_email("ada1@example.com")["emailBlacklisted"] is True  # type: ignore[index]
    assert outcomes(destination(server, resubscribe=True),
                    [item(3, traits={"email": "ada1@example.com"})]) == [DELIVERED]
    assert sent(fake)["emailBlacklisted"] is False
    assert fake.by_email("ada1@example.com")["emailBlacklisted"] is False  # type: ignore[index]


def test_blacklists_are_left_alone_when_the_operator_says_so_or_no_consent_is_read(
        server: RunningServer, fake: BrevoFake) -> None:
    quiet = destination(server, list_ids=[2], mapping={"blacklist_without_consent": False})
    outcomes(quiet, [item(1, consent={"email": False, "sms": False})])
    assert sent(fake) == {"email": "ada1@example.com", "attributes": {"FIRSTNAME": "Ada"},
                          "updateEnabled": True}
    # A mapping without `consent:`: the payload has none.
    outcomes(destination(server, list_ids=[2]), [item(2, consent=None)])
    assert "listIds" not in sent(fake) and "emailBlacklisted" not in sent(fake)


def test_the_phone_is_the_sms_attribute_in_e164(server: RunningServer, fake: BrevoFake) -> None:
    dest = destination(server, mapping={"phone_region": "FR"})
    one = item(1, traits={"email": "ada1@example.com", "phone": "06 12 34 56 78"},
               consent={"email": True, "sms": True})
    assert outcomes(dest, [one]) == [DELIVERED]
    assert sent(fake)["attributes"] == {"SMS": "+33612345678"}
    without = destination(server, mapping={"phone_region": "FR", "sms_attribute": False})
    outcomes(without, [one])
    assert "attributes" not in sent(fake)


def test_a_phone_or_value_brevo_cannot_take_is_left_out_and_reported(
        server: RunningServer) -> None:
    one = item(1, traits={"email": "ada1@example.com", "phone": "06 12 34 56 78",
                          "firstName": {"given": "Ada"}})
    refused_name, refused_phone, upsert = destination(server).build_requests([one])
    assert refused_name == FieldRefused(one, "attributes.FIRSTNAME", (
        "left out: Brevo attribute values are text, numbers, booleans or lists of text"))
    assert refused_phone == FieldRefused(one, "attributes.SMS", (
        "left out: a national number (no + or 00 country prefix) and no country to read it "
        "in: set mapping.options.phone_region"))
    assert isinstance(upsert, PlannedRequest)
    assert "attributes" not in json.loads(upsert.request.content)


def test_date_attributes_are_sent_as_brevo_keeps_them(server: RunningServer,
                                                      fake: BrevoFake) -> None:
    mapping = {"attributes": {"firstName": "FIRSTNAME", "birthday": "BIRTHDAY"},
               "date_attributes": ["BIRTHDAY"]}
    one = item(1, traits={"email": "ada1@example.com", "birthday": "12/10/1990"})
    assert outcomes(destination(server, mapping=mapping), [one]) == [DELIVERED]
    assert sent(fake)["attributes"] == {"BIRTHDAY": "1990-12-10"}
    assert fake.by_email("ada1@example.com")["attributes"] == {  # type: ignore[index]
        "BIRTHDAY": "1990-12-10"}
    assert fake.ignored == []
    day_first = destination(server, mapping={**mapping, "date_order": "day_first"})
    (planned,) = day_first.build_requests([item(2, traits={"email": "a@b.co",
                                                           "birthday": "3/2/1990"})])
    assert isinstance(planned, PlannedRequest)
    assert json.loads(planned.request.content)["attributes"] == {"BIRTHDAY": "1990-02-03"}
    unreadable = item(3, traits={"email": "a@b.co", "birthday": "someday"})
    refused, _ = destination(server, mapping=mapping).build_requests([unreadable])
    assert refused == FieldRefused(unreadable, "attributes.BIRTHDAY", (
        "left out: a date of birth has a day, a month and a four-digit year"))


def test_a_person_brevo_cannot_key_is_a_dead_letter(server: RunningServer) -> None:
    one = item(1, traits={"firstName": "Ada"})
    assert destination(server).build_requests([one]) == [Rejected(
        one, "email: Brevo keys contacts by email, SMS or ext_id; this person has none")]


def test_the_user_id_as_ext_id(server: RunningServer, fake: BrevoFake) -> None:
    dest = destination(server, mapping={"ext_id": True})
    assert outcomes(dest, [item(1, traits={"firstName": "Ada"})]) == [DELIVERED]
    assert sent(fake)["ext_id"] == "u1" and "email" not in sent(fake)
    # An event of a person without email names the contact by it.
    assert outcomes(dest, [item(1, "track", traits={})]) == [DELIVERED]
    assert fake.events[-1]["identifiers"] == {"ext_id": "u1"}


def test_double_opt_in_sends_the_confirmation_to_a_contact_in_no_list(
        server: RunningServer, fake: BrevoFake) -> None:
    dest = destination(server, list_ids=[2], double_opt_in=DOI)
    assert steps(dest, item(1)) == [
        ("read", "GET /v3/contacts/ada1%40example.com", 404),
        ("doi", "POST /v3/contacts/doubleOptinConfirmation", 201)]
    assert sent(fake) == {"email": "ada1@example.com", "attributes": {"FIRSTNAME": "Ada"},
                          "includeListIds": [2], "templateId": 11,
                          "redirectionUrl": "https://example.com/confirmed"}
    fake.confirm("ada1@example.com")
    # Confirmed: the next identify updates the contact without another confirmation email.
    assert steps(dest, item(1, traits={"email": "ada1@example.com", "firstName": "Ada B"})) == [
        ("read", "GET /v3/contacts/ada1%40example.com", 200),
        ("upsert", "POST /v3/contacts", 204)]
    assert "listIds" not in sent(fake) and len(fake.doi_sent) == 1
    assert fake.by_email("ada1@example.com")["attributes"]["FIRSTNAME"] == "Ada B"  # type: ignore[index]


def test_double_opt_in_needs_the_email_consent(server: RunningServer, fake: BrevoFake) -> None:
    dest = destination(server, list_ids=[2], double_opt_in=DOI)
    assert steps(dest, item(1, consent={"email": False, "sms": False})) == [
        ("upsert", "POST /v3/contacts", 201)]
    assert "listIds" not in sent(fake) and fake.doi_sent == []


def test_a_doi_template_brevo_does_not_have_is_a_dead_letter(
        server: RunningServer, fake: BrevoFake) -> None:
    dest = destination(server, list_ids=[2], double_opt_in={**DOI, "template_id": 99})
    assert outcomes(dest, [item(1)]) == [Failed(
        "brevo 404 document_not_found: Template ID does not exist or is not a double opt-in "
        "template")]


def test_an_event(server: RunningServer, fake: BrevoFake) -> None:
    one = item(1, "track", properties={"sku": "s1", "price": 9.5, "cart": {"items": 2}})
    (planned,) = destination(server).build_requests([one])
    assert isinstance(planned, PlannedRequest) and planned.step == "event"
    assert json.loads(planned.request.content) == {
        "event_name": "Order_Shipped", "identifiers": {"email_id": "ada1@example.com"},
        "event_date": "2024-05-01T12:00:00+00:00",
        "event_properties": {"sku": "s1", "price": 9.5, "cart": {"items": 2}}}
    assert outcomes(destination(server), [one]) == [DELIVERED]
    assert fake.events[-1]["event_name"] == "Order_Shipped"


def test_an_event_of_a_person_with_only_a_phone_names_them_by_it(
        server: RunningServer, fake: BrevoFake) -> None:
    one = item(1, "track", traits={"phone": "+33612345678"})
    assert outcomes(destination(server), [one]) == [DELIVERED]
    assert fake.events[-1]["identifiers"] == {"phone_id": "+33612345678"}
    nobody = item(2, "track", traits={})
    assert destination(server).build_requests([nobody]) == [Rejected(
        nobody, "identifiers: Brevo names an event's contact by email, ext_id or phone; this "
                "person has none")]


@pytest.mark.parametrize(("event", "options", "reason"), [
    ("Order Shipped", {"normalize_event_names": False},
     "event: 'Order Shipped' has characters Brevo refuses (letters, digits, - and _ only): "
     "rename it in mapping.event_names or set mapping.options.normalize_event_names"),
    ("x" * 256, {}, "event: longer than Brevo's 255 characters for an event name: shorten it "
                    "in mapping.event_names"),
    ("", {}, "event: missing; a Brevo event needs a name"),
])
def test_an_event_name_brevo_refuses_is_a_dead_letter(
        server: RunningServer, event: str, options: dict[str, Any], reason: str) -> None:
    one = item(1, "track", event=event)
    assert destination(server, mapping=options).build_requests([one]) == [Rejected(one, reason)]


def test_property_keys_brevo_refuses_are_left_out_at_every_depth(
        server: RunningServer, fake: BrevoFake) -> None:
    one = item(1, "track", properties={"ok": 1, "shoes.color": "red",
                                       "cart": {"my item": 1, "items": [{"a b": 1, "c": 2}]}})
    built = destination(server).build_requests([one])
    assert [b for b in built if isinstance(b, FieldRefused)] == [
        FieldRefused(one, where, "left out: Brevo property keys are at most 255 letters, "
                                 "digits, - and _ (keys.normalize in the mapping)")
        for where in ("properties.shoes.color", "properties.cart.my item",
                      "properties.cart.items.a b")]
    assert outcomes(destination(server), [one]) == [DELIVERED]
    assert fake.events[-1]["event_properties"] == {"ok": 1, "cart": {"items": [{"c": 2}]}}


def test_properties_heavier_than_50_kb_are_a_dead_letter(server: RunningServer) -> None:
    one = item(1, "track", properties={"blob": "x" * 52_000})
    assert destination(server).build_requests([one]) == [Rejected(
        one, "properties: more than Brevo's 50 KB for an event's properties: leave some out "
             "in the filter")]


def planned(step: str = "upsert") -> PlannedRequest:
    return PlannedRequest(httpx.Request("POST", "http://127.0.0.1/v3/contacts"), [item(1)],
                          "k", step)


@pytest.mark.parametrize(("response", "outcome"), [
    (httpx.Response(401, json={"code": "unauthorized", "message": "Key not found"}),
     Failed("bad credentials (brevo 401 unauthorized: Key not found)")),
    (httpx.Response(400, json={"code": "duplicate_parameter", "message": "Contact already "
                                                                         "exist"}),
     Failed("brevo 400 duplicate_parameter: Contact already exist")),
    (httpx.Response(402, json={"code": "not_enough_credits", "message": "upgrade"}),
     Failed("brevo 402 not_enough_credits: upgrade")),
    (httpx.Response(403, json={"code": "permission_denied", "message": "no"}),
     Failed("brevo 403 permission_denied: no")),
    (httpx.Response(429, json={"code": "too_many_requests", "message": "slow"},
                    headers={"x-sib-ratelimit-reset": "37"}),
     Retry("brevo 429 too_many_requests: slow", 37.0)),
    (httpx.Response(429, text="", headers={"retry-after": "5",
                                           "x-sib-ratelimit-reset": "37"}),
     Retry("HTTP 429: ", 5.0)),
    (httpx.Response(502, text="<html>bad gateway</html>"),
     Retry("HTTP 502: <html>bad gateway</html>")),
])
def test_how_brevo_answers_are_read(server: RunningServer, response: httpx.Response,
                                    outcome: Any) -> None:
    assert destination(server).classify(planned(), response) == outcome


def test_a_read_answered_by_something_else_than_brevo_is_retried(
        server: RunningServer) -> None:
    dest = destination(server, list_ids=[2], double_opt_in=DOI)
    page = httpx.Response(200, text="<html>maintenance</html>")
    assert dest.classify(planned("read"), page) == Retry(
        "HTTP 200 without Brevo's contact: <html>maintenance</html>")


def test_throttling_through_the_fake_is_retried_after_the_reset(
        server: RunningServer, fake: BrevoFake) -> None:
    fake.rate_limits = {"contacts": (1, 100)}
    dest = destination(server)
    assert outcomes(dest, [item(1), item(2)]) == [
        DELIVERED, Retry("brevo 429 too_many_requests: The expected rate limit is exceeded.",
                         1.0)]


@pytest.mark.parametrize(("settings", "problem"), [
    ({"api_key": "xsmtpsib-abc"}, "this is an SMTP key"),
    ({"api_key": "two words"}, "one word"),
    ({"base_url": "https://api.brevo.com/v2"}, "ends in /v3"),
    ({"list_ids": [0]}, "positive integers"),
    ({"list_ids": [2, 2]}, "named twice"),
    ({"double_opt_in": DOI}, "double_opt_in needs list_ids"),
    ({"list_ids": [2], "double_opt_in": {**DOI, "template_id": 0}}, "greater than 0"),
    ({"list_ids": [2], "double_opt_in": {**DOI, "redirection_url": "nope"}}, "URL"),
    ({"list_ids": [2], "double_opt_in": {"template_id": 11}}, "redirection_url"),
])
def test_settings_brevo_would_refuse(settings: dict[str, Any], problem: str) -> None:
    parsed, problems = BrevoDestination.parse_settings({"api_key": API_KEY, **settings})
    assert parsed is None and any(problem in p for p in problems), problems
    assert not any("xsmtpsib-abc" in p for p in problems)  # a key is never repeated


@pytest.mark.parametrize(("options", "problem"), [
    ({"attributes": {"firstName": "firstname"}}, "upper case"),
    ({"attributes": {"firstName": "FIRST NAME"}}, "upper case"),
    ({"date_attributes": ["birthday"]}, "upper case"),
    ({"date_order": "year_first"}, "date_order"),
    ({"phone_region": "France"}, "phone_region"),
])
def test_mapping_options_brevo_would_refuse(options: dict[str, Any], problem: str) -> None:
    problems = BrevoDestination.options_problems(options, "options")
    assert any(problem in p for p in problems), problems
