"""The Pipedrive plugin against its contract fake: search, then create or update; events as
notes or activities; custom fields by type; and how Pipedrive's answers are read."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pipedrive_helpers import DATE, MONEY, NUMBER, TEXT, TOKEN, destination, item, person
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
from crossdock.plugins.pipedrive import PipedriveDestination, PipedriveSettings
from crossdock.plugins.pipedrive.fake import PipedriveFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.exchange import Exchange, exchange, outcomes
from crossdock.testing.fakeserver import RunningServer


def steps(dest: PipedriveDestination, *items: Any) -> list[tuple[str, str, int]]:
    """(step, METHOD path, status) of every request an exchange made, in order."""
    return [(ex.planned.step, f"{ex.planned.request.method} {ex.planned.request.url.path}",
             ex.response.status_code)
            for ex in exchange(dest, list(items)) if isinstance(ex, Exchange)]


def body(fake: PipedriveFake, n: int = -1) -> Any:
    return fake.received[n]["body"]


def test_an_identify_creates_a_person_pipedrive_does_not_have(
        server: RunningServer, fake: PipedriveFake) -> None:
    dest = destination(server, owner_id=1, visible_to=3)
    assert steps(dest, item(1, traits={"email": "ada1@example.com", "firstName": "Ada",
                                       "lastName": "Lovelace", "phone": "+44 20 7946 0018"})
                 ) == [("search", "GET /api/v2/persons/search", 200),
                       ("create", "POST /api/v2/persons", 200)]
    assert fake.received[0]["query"] == {"term": "ada1@example.com", "fields": "email",
                                         "exact_match": "true"}
    assert body(fake) == {
        "name": "Ada Lovelace",
        "emails": [{"value": "ada1@example.com", "primary": True, "label": "work"}],
        "phones": [{"value": "+442079460018", "primary": True, "label": "mobile"}],
        "owner_id": 1, "visible_to": 3}
    # the token travels in its header, never in the URL
    assert fake.received[0]["headers"]["x-api-token"] == TOKEN
    assert all("api_token" not in r["query"] for r in fake.received)


def test_an_identify_updates_what_changed_on_the_person_found(
        server: RunningServer, fake: PipedriveFake) -> None:
    pid = person(fake, name="Ada L")
    dest = destination(server, mapping={"custom_fields": {"plan": TEXT}})
    one = item(1, traits={"email": "ada1@example.com", "firstName": "Ada",
                          "lastName": "Lovelace", "plan": "pro", "phone": "+15555550100"})
    assert steps(dest, one) == [("search", "GET /api/v2/persons/search", 200),
                                ("update", f"PATCH /api/v2/persons/{pid}", 200)]
    # The email list is left alone (it has one); the phone is added to a person with none.
    assert body(fake) == {"name": "Ada Lovelace", "custom_fields": {TEXT: "pro"},
                          "phones": [{"value": "+15555550100", "primary": True,
                                      "label": "mobile"}]}
    assert fake.persons[pid]["name"] == "Ada Lovelace"


def test_a_person_with_nothing_new_costs_only_the_search(
        server: RunningServer, fake: PipedriveFake) -> None:
    person(fake, name="Ada Lovelace")
    dest = destination(server)
    assert steps(dest, item(1)) == [("search", "GET /api/v2/persons/search", 200)]
    assert outcomes(dest, [item(2, traits={"email": "ada1@example.com",
                                           "name": "Ada Lovelace"})]) == [DELIVERED]


@pytest.mark.parametrize(("options", "fields", "query"), [
    # the userId, when a custom field holds it, comes first
    ({"user_id_field": TEXT}, {}, {"term": "u1", "fields": "custom_fields"}),
    ({}, {}, {"term": "ada1@example.com", "fields": "email"}),
    ({"match": ["phone", "email"]}, {"traits": {"email": "ada1@example.com",
                                                "phone": "+1 914 844 0001"}},
     {"term": "+19148440001", "fields": "phone"}),
    # without an email, the phone
    ({}, {"traits": {"phone": "+1 914 844 0001"}}, {"term": "+19148440001", "fields": "phone"}),
])
def test_a_person_is_searched_by_the_first_identifier_of_match(
        server: RunningServer, fake: PipedriveFake, options: dict[str, Any],
        fields: dict[str, Any], query: dict[str, str]) -> None:
    (search,) = destination(server, mapping=options).build_requests([item(1, **fields)])
    assert isinstance(search, PlannedRequest)
    assert dict(search.request.url.params) == {**query, "exact_match": "true"}


def test_a_person_created_by_user_id_carries_it_in_its_field(
        server: RunningServer, fake: PipedriveFake) -> None:
    dest = destination(server, mapping={"user_id_field": TEXT})
    assert outcomes(dest, [item(1)]) == [DELIVERED]
    pid = max(fake.persons)
    assert fake.persons[pid]["custom_fields"] == {TEXT: "u1"}
    # The next message of the same user finds them by it, whatever their email is now.
    assert steps(dest, item(2, userId="u1", traits={"email": "new@example.com"}))[-1] == (
        "update", f"PATCH /api/v2/persons/{pid}", 200)


def test_a_person_with_no_identifier_is_a_dead_letter_naming_match(
        server: RunningServer) -> None:
    one = item(1, traits={"phone": "+ call me"})
    assert destination(server).build_requests([one]) == [Rejected(
        one, "no email, phone to find a Pipedrive person by (options.match; phone left out: "
             "not a phone number)")]


def test_an_event_is_a_note_on_the_person_with_its_time_and_escaped_properties(
        server: RunningServer, fake: PipedriveFake) -> None:
    pid = person(fake)
    one = item(1, "track", properties={"plan": "<b>pro</b>", "seats": 3},
               rendered={"note": "<p>rendered</p>"})
    assert steps(destination(server), one) == [("search", "GET /api/v2/persons/search", 200),
                                               ("note", "POST /api/v1/notes", 200)]
    assert body(fake) == {"content": "<p>rendered</p>", "person_id": pid,
                          "add_time": "2024-05-01 12:30:00"}
    # Without the template (an operator removed it), the note is built the same way.
    two = item(2, "track", traits={"email": "ada1@example.com"},
               properties={"plan": "<b>pro</b>", "seats": 3})
    assert outcomes(destination(server), [two]) == [DELIVERED]
    assert body(fake)["content"] == ("<p><b>Demo Requested</b></p><p>plan: &lt;b&gt;pro&lt;/b"
                                     "&gt;</p><p>seats: 3</p>")


def test_an_event_of_a_person_pipedrive_does_not_have_creates_them_first(
        server: RunningServer, fake: PipedriveFake) -> None:
    assert steps(destination(server), item(1, "track")) == [
        ("search", "GET /api/v2/persons/search", 200),
        ("create-for-event", "POST /api/v2/persons", 200),
        ("note", "POST /api/v1/notes", 200)]
    assert fake.notes[0]["person_id"] == max(fake.persons)
    off = destination(server, mapping={"create_person_for_events": False})
    assert outcomes(off, [item(2, "track")]) == [Failed(
        "no Pipedrive person to attach the event to (options.create_person_for_events is "
        "off)")]


def test_events_named_in_activities_are_activities(server: RunningServer,
                                                   fake: PipedriveFake) -> None:
    pid = person(fake)
    dest = destination(server, owner_id=1, mapping={"activities": {"Demo Requested":
                                                                  "meeting"}})
    one = item(1, "track", rendered={"note": "<p>n</p>", "activity_subject": "Demo!"})
    assert steps(dest, one)[-1] == ("activity", "POST /api/v2/activities", 200)
    assert body(fake) == {"subject": "Demo!", "type": "meeting", "person_id": pid,
                          "done": True, "note": "<p>n</p>", "due_date": "2024-05-01",
                          "due_time": "12:30", "owner_id": 1}
    every = destination(server, mapping={"events": "activity", "activity_type": "call"})
    assert outcomes(every, [item(2, "track", event="Called")]) == [DELIVERED]
    assert (body(fake)["type"], body(fake)["subject"]) == ("call", "Called")


def test_an_activity_type_pipedrive_does_not_have_is_a_dead_letter(
        server: RunningServer, fake: PipedriveFake) -> None:
    person(fake)
    dest = destination(server, mapping={"activities": {"Demo Requested": "webinar"}})
    assert outcomes(dest, [item(1, "track")]) == [Failed(
        "HTTP 400: type: no activity type 'webinar'")]


@pytest.mark.parametrize(("field", "value", "sent"), [
    ({"key": NUMBER, "type": "number"}, "42.5", 42.5),
    ({"key": NUMBER, "type": "number"}, 7, 7),
    ({"key": DATE, "type": "date"}, "7/4/1990", "1990-07-04"),
    ({"key": DATE, "type": "date"}, "1990-07-04T00:00:00Z", "1990-07-04"),
    ({"key": MONEY, "type": "monetary", "currency": "eur"}, 10, {"value": 10,
                                                                  "currency": "EUR"}),
    ({"key": MONEY, "type": "monetary"}, {"amount": "9.5", "currency": "usd"},
     {"value": 9.5, "currency": "USD"}),
    (TEXT, 42, "42"),
    (TEXT, True, "true"),
])
def test_custom_fields_are_sent_as_their_type_wants(
        server: RunningServer, fake: PipedriveFake, field: Any, value: Any, sent: Any) -> None:
    dest = destination(server, mapping={"custom_fields": {"ltv": field}})
    assert outcomes(dest, [item(1, traits={"email": "ada1@example.com", "ltv": value})]) == [
        DELIVERED]
    assert body(fake)["custom_fields"] == {(field if isinstance(field, str)
                                            else field["key"]): sent}


@pytest.mark.parametrize(("field", "value", "reason"), [
    ({"key": NUMBER, "type": "number"}, "lots", "left out: not a number, for a number field"),
    ({"key": DATE, "type": "date"}, "someday", "left out: not a date"),
    ({"key": MONEY, "type": "monetary"}, 10, "left out: a monetary field needs a currency"),
])
def test_a_value_not_of_its_field_s_type_is_left_out_and_reported(
        server: RunningServer, fake: PipedriveFake, field: Any, value: Any,
        reason: str) -> None:
    dest = destination(server, mapping={"custom_fields": {"ltv": field}})
    one = item(1, traits={"email": "ada1@example.com", "ltv": value})
    refused, search = dest.build_requests([one])
    assert isinstance(search, PlannedRequest) and search.step == "search"
    assert isinstance(refused, FieldRefused) and refused.field == "traits.ltv"
    assert refused.reason.startswith(reason)
    assert outcomes(dest, [one]) == [DELIVERED]
    assert "custom_fields" not in body(fake)


@pytest.mark.parametrize(("granted", "create", "update"), [
    (True, "subscribed", "subscribed"),
    (False, "no_consent", "unsubscribed"),
])
def test_marketing_status_follows_the_email_consent(
        server: RunningServer, fake: PipedriveFake, granted: bool, create: str,
        update: str) -> None:
    dest = destination(server, marketing_status=True)
    assert outcomes(dest, [item(1, consent={"email": granted})]) == [DELIVERED]
    assert body(fake)["marketing_status"] == create
    assert outcomes(dest, [item(2, traits={"email": "ada1@example.com"},
                                consent={"email": granted})]) == [DELIVERED]
    assert body(fake)["marketing_status"] == update


def test_a_person_deleted_after_the_search_is_created(server: RunningServer) -> None:
    dest = destination(server)
    one = item(1)
    update = PlannedRequest(httpx.Request("PATCH", server.url + "/api/v2/persons/7"), [one],
                            "k", "update")
    gone = httpx.Response(404, json={"success": False, "error": "Person not found"})
    follow = dest.classify(update, gone)
    assert isinstance(follow, FollowUp) and follow.step == "create"
    assert json.loads(follow.request.content)["name"] == "Ada Lovelace"


def test_answers_are_classified(server: RunningServer, fake: PipedriveFake) -> None:
    dest = destination(server)
    fake.script([503, {"status": 429, "body": '{"success": false, "error": "Request over '
                                               'limit"}', "headers": {"x-ratelimit-reset": "2"}},
                 {"status": 429, "body": "{}", "headers": {"Retry-After": "7200"}}])
    assert outcomes(dest, [item(1)]) == [Retry("HTTP 503: ", None)]
    assert outcomes(dest, [item(2)]) == [Retry("HTTP 429: Request over limit", 2.0)]
    assert outcomes(dest, [item(3)]) == [Retry("HTTP 429: {}", 7200.0)]
    wrong = destination(server, token="revoked")
    assert outcomes(wrong, [item(4)]) == [Failed(
        "bad credentials (HTTP 401): unauthorized access (Please check developers.pipedrive."
        "com for more information about Pipedrive API.)")]
    typo = destination(server, mapping={"custom_fields": {"ltv": NUMBER}})
    assert outcomes(typo, [item(5, traits={"email": "ada5@example.com", "ltv": 5})]) == [
        Failed(f"HTTP 400: custom_fields.{NUMBER}: not a valid double value")]


@pytest.mark.parametrize(("response", "outcome"), [
    (httpx.Response(200, json={"success": False, "error": "odd"}), Failed("Pipedrive: odd")),
    (httpx.Response(200, text="<html>proxy</html>"),
     Retry("HTTP 200 without Pipedrive's answer: <html>proxy</html>")),
])
def test_a_2xx_that_is_no_success_is_not_taken_for_one(
        server: RunningServer, response: httpx.Response, outcome: Any) -> None:
    dest = destination(server)
    note = PlannedRequest(httpx.Request("POST", server.url + "/api/v1/notes"), [item(1)], "k",
                          "note")
    assert dest.classify(note, response) == outcome


def test_searches_and_writes_share_limits_by_token_without_showing_it(
        server: RunningServer, fake: PipedriveFake) -> None:
    keys = {ex.planned.step: ex.planned.rate_key for ex in exchange(
        destination(server), [item(1)]) if isinstance(ex, Exchange)}
    assert keys["search"].startswith("pipedrive:search:")
    assert keys["create"].startswith("pipedrive:") and keys["create"] != keys["search"]
    assert all(TOKEN not in key for key in keys.values())


@pytest.mark.parametrize(("settings", "problem"), [
    ({"auth": "oauth", "client_id": "c", "client_secret": "s"},
     r"auth oauth takes client_id, client_secret and refresh_token \(missing: refresh_token\)"),
    ({"auth": "oauth", "client_id": "c", "client_secret": "s", "refresh_token": "r",
      "api_token": "t"}, "auth oauth uses no api_token"),
    ({"auth": "oauth", "client_id": "c", "client_secret": "s", "refresh_token": "r",
      "company_domain": "acme"}, r"the token answer names \(api_domain\)"),
    ({"company_domain": "acme"}, "api_token is required"),
    ({"api_token": "t", "company_domain": "acme", "refresh_token": "r"},
     "refresh_token: for auth oauth only"),
    ({"api_token": "t"}, r"company_domain \(or base_url\) is required"),
    ({"api_token": "t", "company_domain": "acme.pipedrive.com"}, "subdomain only"),
    ({"api_token": "", "company_domain": "acme"}, "must be the token"),
    ({"api_token": "t", "company_domain": "acme", "visible_to": 2}, "visible_to"),
    ({"api_token": "t", "company_domain": "acme", "owner_id": 0}, "greater than or equal"),
])
def test_validate_refuses_settings_pipedrive_would_refuse(settings: dict[str, Any],
                                                          problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        PipedriveSettings.model_validate(settings)
    ok = PipedriveSettings.model_validate({"api_token": "t", "company_domain": "acme-2"})
    assert ok.root == "https://acme-2.pipedrive.com"


@pytest.mark.parametrize(("options", "problem"), [
    ({"custom_fields": {"plan": "plan_key"}}, "not a custom field's API key"),
    ({"custom_fields": {"ltv": {"key": NUMBER, "type": "currency"}}}, "type"),
    ({"custom_fields": {"ltv": {"key": MONEY, "type": "monetary", "currency": "euro"}}},
     "ISO 4217"),
    ({"match": ["user_id"]}, "user_id alone needs user_id_field"),
    ({"match": ["email", "email"]}, "at most once"),
    ({"user_id_field": "user_id"}, "not a custom field's API key"),
    ({"events": "deal"}, "options.events"),
])
def test_validate_names_bad_options(options: dict[str, Any], problem: str) -> None:
    problems = PipedriveDestination.options_problems(options, "options")
    assert any(problem in p for p in problems), problems


def test_a_lagging_search_index_can_make_a_person_twice_unless_searched_again(
        server: RunningServer, fake: PipedriveFake, clock: ManualClock) -> None:
    fake.search_delay = 10.0
    dest = destination(server)
    assert outcomes(dest, [item(1)]) == [DELIVERED]
    assert outcomes(dest, [item(2, "track", traits={"email": "ada1@example.com"})]) == [
        DELIVERED]
    assert len(fake.persons) == 2   # the event's search did not see the identify's person

    fake.reset()
    careful = destination(server, mapping={"search_again_after": 30})
    ada = {"email": "ada1@example.com", "name": "Ada"}
    assert outcomes(careful, [item(3, traits=ada)]) == [Retry(
        "no Pipedrive person found; searching again in 30s before creating one "
        "(options.search_again_after)", 30.0)]
    assert outcomes(careful, [item(3, traits=ada, attempts=2)]) == [DELIVERED]
    clock.advance(1.0)
    event = item(4, "track", traits={"email": "ada1@example.com"})
    assert outcomes(careful, [event]) == [Retry(
        "no Pipedrive person found; searching again in 30s before creating one "
        "(options.search_again_after)", 30.0)]
    clock.advance(30.0)
    assert outcomes(careful, [item(4, "track", traits={"email": "ada1@example.com"},
                                   attempts=2)]) == [DELIVERED]
    assert len(fake.persons) == 1 and len(fake.notes) == 1


def test_a_person_created_without_a_name_is_named_by_their_email(
        server: RunningServer, fake: PipedriveFake) -> None:
    assert outcomes(destination(server), [item(1, traits={"email": "ada1@example.com"})]) == [
        DELIVERED]
    assert body(fake)["name"] == "ada1@example.com"
    # An update never renames a person by their email.
    assert outcomes(destination(server), [item(2, traits={"email": "ada1@example.com"})]) == [
        DELIVERED]
    assert [r["method"] for r in fake.received] == ["GET", "POST", "GET"]


def test_searches_are_held_to_the_search_api_s_rate_by_default() -> None:
    assert PipedriveDestination.default_rate_limit == 5.0


def test_a_created_person_without_an_id_is_searched_again_not_taken_as_done(
        server: RunningServer) -> None:
    dest = destination(server)
    create = PlannedRequest(httpx.Request("POST", server.url + "/api/v2/persons"),
                            [item(1, "track")], "k", "create-for-event")
    odd = httpx.Response(200, json={"success": True, "data": {}})
    assert dest.classify(create, odd) == Retry(
        'Pipedrive created the person but its answer has no id: {"success":true,"data":{}}')


# -- a retried event after a lost answer --------------------------------------------------


@pytest.mark.parametrize(("mapping", "kept", "find"), [
    (None, "notes", ("find-note", "GET /api/v1/notes", 200)),
    ({"activities": {"Demo Requested": "meeting"}}, "activities",
     ("find-activity", "GET /api/v2/activities", 200)),
])
def test_a_retried_event_after_a_lost_answer_is_not_added_twice(
        server: RunningServer, fake: PipedriveFake, mapping: dict[str, Any] | None,
        kept: str, find: tuple[str, str, int]) -> None:
    person(fake)
    dest = destination(server, mapping=mapping)
    # Pipedrive adds the note (or activity), but its answer is lost: the attempt is retried.
    fake.lost_answers = 1
    (outcome,) = outcomes(dest, [item(1, "track")])
    assert isinstance(outcome, Retry) and len(getattr(fake, kept)) == 1
    # Pipedrive takes no idempotency key: the retry reads the person's newest and finds it.
    assert steps(dest, item(1, "track", attempts=2)) == [
        ("search", "GET /api/v2/persons/search", 200), find]
    assert len(getattr(fake, kept)) == 1


def test_a_retried_event_pipedrive_never_got_is_added(server: RunningServer,
                                                      fake: PipedriveFake) -> None:
    pid = person(fake)
    # Another event's note, the same second, on the same person, is not this one.
    other = item(2, "track", event="Trial Started", traits={"email": "ada1@example.com"})
    assert outcomes(destination(server), [other]) == [DELIVERED]
    assert steps(destination(server), item(1, "track", attempts=2)) == [
        ("search", "GET /api/v2/persons/search", 200),
        ("find-note", "GET /api/v1/notes", 200), ("note", "POST /api/v1/notes", 200)]
    assert [n["person_id"] for n in fake.notes] == [pid, pid]
    (find,) = [r for r in fake.received if r["method"] == "GET" and "notes" in r["path"]]
    assert find["query"] == {"person_id": str(pid), "sort": "add_time DESC", "limit": "50",
                             "start_date": "2024-05-01", "end_date": "2024-05-01"}


def test_a_find_that_is_not_pipedrives_list_is_retried(server: RunningServer) -> None:
    dest = destination(server)
    find = PlannedRequest(dest.request("GET", "/api/v1/notes", params={"person_id": "1"}),
                          [item(1, "track", attempts=2)], step="find-note")
    # A proxy's page says nothing of what Pipedrive holds: no note on its word.
    outcome = dest.classify(find, httpx.Response(200, text="<html>proxy</html>",
                                                 request=find.request))
    assert isinstance(outcome, Retry)
    listless = dest.classify(find, httpx.Response(200, json={"success": True, "data": 3},
                                                  request=find.request))
    assert isinstance(listless, Retry) and "without Pipedrive's list" in listless.reason
