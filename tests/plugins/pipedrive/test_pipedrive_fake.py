"""The Pipedrive contract fake over real HTTP: it refuses what Pipedrive refuses (each rule's
source is on docs/destinations/pipedrive.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pipedrive_helpers import DATE, MONEY, NUMBER, TEXT, TOKEN, person

from crossdock.plugins.pipedrive.fake import PipedriveFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, fake_process

ADA = {"name": "Ada Lovelace", "emails": [{"value": "ada@example.com", "primary": True}]}


def call(server: RunningServer, method: str, path: str, body: Any = None, *,
         params: dict[str, str] | None = None, headers: dict[str, str] | None = None
         ) -> httpx.Response:
    return httpx.request(method, server.url + path, json=body, params=params,
                         headers={"x-api-token": TOKEN} if headers is None else headers,
                         timeout=10)


def search(server: RunningServer, term: str, fields: str = "email", exact: str = "true"
           ) -> httpx.Response:
    return call(server, "GET", "/api/v2/persons/search",
                params={"term": term, "fields": fields, "exact_match": exact})


def test_add_find_and_update_a_person(server: RunningServer, fake: PipedriveFake) -> None:
    added = call(server, "POST", "/api/v2/persons", {
        **ADA, "custom_fields": {TEXT: "u-ada", NUMBER: 42.5,
                                 MONEY: {"value": 10, "currency": "EUR"}, DATE: "1990-07-04"}})
    assert added.status_code == 200 and added.json()["success"] is True
    pid = added.json()["data"]["id"]
    # exact matches are not case-sensitive
    found = search(server, "ADA@example.com").json()["data"]["items"]
    assert [i["item"]["id"] for i in found] == [pid]
    assert found[0]["item"]["emails"] == ["ada@example.com"]
    by_field = search(server, "u-ada", "custom_fields").json()["data"]["items"]
    assert [i["item"]["id"] for i in by_field] == [pid]
    assert search(server, "ada@example", exact="false").json()["data"]["items"]
    updated = call(server, "PATCH", f"/api/v2/persons/{pid}", {"custom_fields": {NUMBER: 7}})
    assert updated.status_code == 200
    assert fake.persons[pid]["custom_fields"][NUMBER] == 7
    assert fake.persons[pid]["custom_fields"][TEXT] == "u-ada"


def test_a_written_person_is_found_only_after_the_search_index_catches_up(
        server: RunningServer, fake: PipedriveFake, clock: ManualClock) -> None:
    fake.search_delay = 5.0
    call(server, "POST", "/api/v2/persons", ADA)
    assert search(server, "ada@example.com").json()["data"]["items"] == []
    clock.advance(5.0)
    assert len(search(server, "ada@example.com").json()["data"]["items"]) == 1


def test_marketing_status_changes_once_and_needs_an_email(
        server: RunningServer, fake: PipedriveFake) -> None:
    no_email = call(server, "POST", "/api/v2/persons",
                    {"name": "Bo", "marketing_status": "subscribed"}).json()["data"]
    assert no_email["marketing_status"] == "no_consent"
    pid = call(server, "POST", "/api/v2/persons", ADA).json()["data"]["id"]
    call(server, "PATCH", f"/api/v2/persons/{pid}", {"marketing_status": "subscribed"})
    assert fake.persons[pid]["marketing_status"] == "subscribed"
    # A further change is ignored, not refused.
    again = call(server, "PATCH", f"/api/v2/persons/{pid}",
                 {"marketing_status": "unsubscribed"})
    assert again.status_code == 200 and again.json()["data"]["marketing_status"] == "subscribed"


def test_notes_and_activities_attach_to_a_person(server: RunningServer,
                                                 fake: PipedriveFake) -> None:
    pid = person(fake)
    note = call(server, "POST", "/api/v1/notes", {"content": "<b>hi</b>", "person_id": pid})
    assert note.status_code == 200
    activity = call(server, "POST", "/api/v2/activities", {
        "subject": "Demo", "type": "meeting", "person_id": pid, "due_date": "2024-05-01",
        "due_time": "12:30", "done": True})
    assert activity.status_code == 200
    assert fake.notes[0]["person_id"] == fake.activities[0]["person_id"] == pid


def test_a_persons_notes_and_activities_are_listed_newest_first(
        server: RunningServer, fake: PipedriveFake) -> None:
    pid, other = person(fake), person(fake, "bob@example.com")
    assert call(server, "GET", "/api/v1/notes", params={"person_id": str(pid)}).json()[
        "data"] is None  # v1 answers no notes as null
    for who, when in ((pid, "2024-05-01 09:00:00"), (other, "2024-05-01 10:00:00"),
                      (pid, "2024-05-02 08:00:00"), (pid, "2024-05-01 11:00:00")):
        call(server, "POST", "/api/v1/notes", {"content": "n", "person_id": who,
                                               "add_time": when})
    notes = call(server, "GET", "/api/v1/notes", params={
        "person_id": str(pid), "sort": "add_time DESC", "start_date": "2024-05-01",
        "end_date": "2024-05-01", "limit": "50"}).json()
    assert [n["add_time"] for n in notes["data"]] == ["2024-05-01 11:00:00",
                                                      "2024-05-01 09:00:00"]
    assert notes["additional_data"]["pagination"]["more_items_in_collection"] is False
    # A note without add_time gets the fake's clock's.
    assert call(server, "POST", "/api/v1/notes", {"content": "now", "person_id": pid}
                ).json()["data"]["add_time"]
    for subject in ("first", "second"):
        call(server, "POST", "/api/v2/activities", {"subject": subject, "type": "call",
                                                    "person_id": pid})
    listed = call(server, "GET", "/api/v2/activities", params={
        "person_id": str(pid), "sort_by": "add_time", "sort_direction": "desc",
        "limit": "50"}).json()
    assert [a["subject"] for a in listed["data"]] == ["second", "first"]
    assert call(server, "GET", "/api/v1/notes", params={"limit": "0"}).status_code == 400


def test_a_lost_answer_still_adds_the_note(server: RunningServer, fake: PipedriveFake) -> None:
    pid = person(fake)
    fake.lost_answers = 1
    lost = call(server, "POST", "/api/v1/notes", {"content": "n", "person_id": pid})
    assert lost.status_code == 504 and len(fake.notes) == 1


@pytest.mark.parametrize(("method", "path", "body", "params", "status", "error"), [
    # search
    ("GET", "/api/v2/persons/search", None, {"term": "a"}, 400, "at least 2 characters"),
    ("GET", "/api/v2/persons/search", None, {"term": "ab", "fields": "address"}, 400,
     "fields: one of"),
    # persons
    ("POST", "/api/v2/persons", {"emails": ADA["emails"]}, None, 400, "name: is required"),
    ("POST", "/api/v2/persons", {**ADA, "emails": ["ada@example.com"]}, None, 400,
     "a list of {value, primary, label}"),
    ("POST", "/api/v2/persons", {**ADA, "emails": [{"value": "a@b.co", "primary": 1}]}, None,
     400, "primary is true or false"),
    ("POST", "/api/v2/persons", {**ADA, "custom_fields": {"f" * 40: "x"}}, None, 400,
     "no such person field"),
    ("POST", "/api/v2/persons", {**ADA, "custom_fields": {NUMBER: "42"}}, None, 400,
     "not a valid double value"),
    ("POST", "/api/v2/persons", {**ADA, "custom_fields": {MONEY: 10}}, None, 400,
     "not a valid monetary value"),
    ("POST", "/api/v2/persons", {**ADA, "custom_fields": {DATE: "04/07/1990"}}, None, 400,
     "not a valid date value"),
    ("POST", "/api/v2/persons", {**ADA, "owner_id": 99}, None, 400, "not a user"),
    ("POST", "/api/v2/persons", {**ADA, "visible_to": 2}, None, 400, "one of 1, 3, 5, 7"),
    ("POST", "/api/v2/persons", {**ADA, "marketing_status": "yes"}, None, 400,
     "marketing_status: one of"),
    ("POST", "/api/v2/persons", {**ADA, "nickname": "A"}, None, 400, "not a field"),
    ("PATCH", "/api/v2/persons/999", {"name": "x"}, None, 404, "Person not found"),
    ("PATCH", "/api/v2/persons/abc", {"name": "x"}, None, 400, "must be an integer"),
    # notes and activities
    ("POST", "/api/v1/notes", {"person_id": 1}, None, 400, "content: is required"),
    ("POST", "/api/v1/notes", {"content": "x"}, None, 400, "one of person_id"),
    ("POST", "/api/v1/notes", {"content": "x", "person_id": 42}, None, 400,
     "person 42 not found"),
    ("POST", "/api/v2/activities", {"type": "call"}, None, 400, "subject: is required"),
    ("POST", "/api/v2/activities", {"subject": "x", "type": "webinar"}, None, 400,
     "no activity type 'webinar'"),
    ("POST", "/api/v2/activities", {"subject": "x", "due_date": "2024-13-01"}, None, 400,
     "YYYY-MM-DD"),
    ("POST", "/api/v2/activities", {"subject": "x", "due_time": "9am"}, None, 400, "HH:MM"),
    ("POST", "/api/v2/activities", {"subject": "x", "done": 1}, None, 400, "true or false"),
])
def test_refusals(server: RunningServer, method: str, path: str, body: Any,
                  params: dict[str, str] | None, status: int, error: str) -> None:
    answer = call(server, method, path, body, params=params)
    assert answer.status_code == status
    assert answer.json()["success"] is False and error in answer.json()["error"]


@pytest.mark.parametrize(("path", "headers", "params", "status"), [
    ("/api/v2/persons/search", {}, {"term": "ab"}, 401),
    ("/api/v2/persons/search", {"x-api-token": "wrong"}, {"term": "ab"}, 401),
    # v2 takes no api_token query parameter; v1 still does
    ("/api/v2/persons/search", {}, {"term": "ab", "api_token": TOKEN}, 401),
    ("/api/v1/notes", {}, {"api_token": TOKEN}, 400),
    ("/api/v2/persons/search", {"authorization": "Bearer oauth-1"}, {"term": "ab"}, 200),
    ("/api/v2/persons/search", {"authorization": f"Bearer {TOKEN}"}, {"term": "ab"}, 401),
])
def test_auth(server: RunningServer, fake: PipedriveFake, path: str,
              headers: dict[str, str], params: dict[str, str], status: int) -> None:
    fake.oauth_tokens.add("oauth-1")
    method = "GET" if "search" in path else "POST"
    answer = call(server, method, path, {} if method == "POST" else None, params=params,
                  headers=headers)
    assert answer.status_code == status
    if status == 401:
        assert answer.json()["error"] == "unauthorized access"


def test_the_burst_limit_is_per_token_per_two_seconds(
        server: RunningServer, fake: PipedriveFake, clock: ManualClock) -> None:
    fake.burst = 3
    answers = [call(server, "POST", "/api/v2/persons", {"name": f"p{i}"}) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit"] == "3"
    assert answers[2].headers["x-ratelimit-remaining"] == "0"
    assert answers[3].headers["x-ratelimit-reset"] == "2"
    assert answers[3].json()["error"] == "Request over limit"
    clock.advance(2.0)
    assert call(server, "POST", "/api/v2/persons", {"name": "p4"}).status_code == 200


def test_the_search_api_has_a_limit_of_its_own(server: RunningServer,
                                               fake: PipedriveFake) -> None:
    answers = [search(server, "ada@example.com") for _ in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert call(server, "POST", "/api/v2/persons", {"name": "p"}).status_code == 200


def test_the_daily_token_budget_is_spent_by_cost_and_resets_at_midnight(
        server: RunningServer, fake: PipedriveFake, clock: ManualClock) -> None:
    fake.daily_budget = 100
    assert search(server, "ada@example.com").status_code == 200          # 40
    assert search(server, "ada@example.com").status_code == 200          # 80
    assert call(server, "POST", "/api/v2/persons", {"name": "p"}).status_code == 200  # 90
    spent = search(server, "ada@example.com")                            # 130: refused
    assert spent.status_code == 429
    assert spent.json()["error"] == "Daily token budget exhausted"
    assert spent.headers["Retry-After"] == str(2 * 3600 + 1)  # the clock is 22:00 UTC
    assert call(server, "POST", "/api/v2/persons", {"name": "q"}).status_code == 200  # 100
    clock.advance(2 * 3600)
    assert search(server, "ada@example.com").status_code == 200


def test_scripted_replies_answer_first(server: RunningServer, fake: PipedriveFake) -> None:
    fake.script([502])
    assert search(server, "ada@example.com").status_code == 502
    assert search(server, "ada@example.com").status_code == 200
    assert fake.statuses() == [502, 200]


def test_the_fake_runs_on_its_own() -> None:
    with fake_process("crossdock.plugins.pipedrive.fake", "--api-token", "t") as proc:
        assert "Pipedrive fake on" in proc.banner
        answer = httpx.get(proc.url + "/api/v2/persons/search", params={"term": "ab"},
                           headers={"x-api-token": "t"})
        assert answer.json() == {"success": True, "data": {"items": []},
                                 "additional_data": {"next_cursor": None}}
