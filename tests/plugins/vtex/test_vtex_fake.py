"""The Master Data contract fake refuses what the API refuses (docs/destinations/vtex.md):
spoken to over HTTP, without the plugin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from vtex_helpers import APP_KEY, APP_TOKEN

from crossdock.plugins.vtex.fake import Entity, VtexFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer

HEADERS = {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}


def patch(server: RunningServer, body: Any, entity: str = "CL",
          headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.patch(f"{server.url}/api/dataentities/{entity}/documents", json=body,
                       headers=HEADERS if headers is None else headers)


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"X-VTEX-API-AppKey": APP_KEY}, 401),
    ({"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": "wrong"}, 401),
    ({"X-VTEX-API-AppKey": "other", "X-VTEX-API-AppToken": APP_TOKEN}, 401),
])
def test_both_credential_headers_are_required(server: RunningServer, headers: dict[str, str],
                                              status: int) -> None:
    response = patch(server, {"email": "ada@example.com"}, headers=headers)
    assert response.status_code == status
    assert "Unauthorized" in response.json()["Message"]


def test_a_key_without_the_write_resource_is_forbidden(server: RunningServer,
                                                       fake: VtexFake) -> None:
    fake.may_write = False
    assert patch(server, {"email": "ada@example.com"}).status_code == 403


def test_the_body_is_a_json_object(server: RunningServer) -> None:
    assert patch(server, ["ada@example.com"]).status_code == 400
    response = httpx.patch(f"{server.url}/api/dataentities/CL/documents",
                           content=b"email=ada", headers={
                               **HEADERS, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400


@pytest.mark.parametrize("body, message", [
    ({"email": "ada@example.com", "plan": "pro"}, "Field 'plan' not found"),
    ({"email": "not-an-email"}, "'email'"),
    ({"email": "ada@example.com", "isNewsletterOptIn": "yes"}, "'isNewsletterOptIn'"),
    ({"email": "ada@example.com", "firstName": "A" * 301}, "'firstName'"),
    ({"email": "ada@example.com", "gender": "x" * 11}, "'gender'"),
    ({"email": "ada@example.com", "birthDate": "17/11/1992"}, "'birthDate'"),
])
def test_fields_must_be_the_entity_s_and_of_its_type(server: RunningServer, fake: VtexFake,
                                                     body: dict[str, Any],
                                                     message: str) -> None:
    response = patch(server, body)
    assert response.status_code == 400
    assert message in response.json()["Message"]
    assert fake.documents.get("CL", {}) == {}  # nothing is written


def test_an_unknown_entity_is_not_found(server: RunningServer) -> None:
    assert patch(server, {"email": "ada@example.com"}, entity="ZZ").status_code == 404


def test_documents_are_matched_by_the_unique_email_then_by_id(server: RunningServer,
                                                              fake: VtexFake) -> None:
    created = patch(server, {"email": "ada@example.com", "firstName": "Ada"})
    assert created.status_code == 201
    answer = created.json()
    doc_id = answer["DocumentId"]
    assert answer["Id"] == f"CL-{doc_id}"
    assert answer["Href"].endswith(f"/api/dataentities/CL/documents/{doc_id}")
    updated = patch(server, {"email": "ADA@example.com", "lastName": "Lovelace"})
    assert updated.status_code == 200 and updated.json()["DocumentId"] == doc_id
    unchanged = patch(server, {"email": "ADA@example.com", "lastName": "Lovelace"})
    assert unchanged.status_code == 304 and unchanged.content == b""
    by_id = patch(server, {"id": doc_id, "isNewsletterOptIn": True})
    assert by_id.status_code == 200
    # Only the fields sent changed: a partial update.
    assert fake.document("CL", "ada@example.com") == {
        "id": doc_id, "email": "ADA@example.com", "firstName": "Ada",
        "lastName": "Lovelace", "isNewsletterOptIn": True}
    assert patch(server, {"email": "bo@example.com"}).status_code == 201
    assert len(fake.documents["CL"]) == 2


def test_an_entity_without_a_unique_index_creates_each_time(server: RunningServer,
                                                            fake: VtexFake) -> None:
    fake.entities["NL"] = Entity({"email": "Email"})
    assert patch(server, {"email": "ada@example.com"}, entity="NL").status_code == 201
    assert patch(server, {"email": "ada@example.com"}, entity="NL").status_code == 201
    assert len(fake.documents["NL"]) == 2


def test_the_account_s_requests_per_second_are_limited(server: RunningServer, fake: VtexFake,
                                                       clock: ManualClock) -> None:
    fake.rate_limit = 2
    assert patch(server, {"email": "a@example.com"}).status_code == 201
    assert patch(server, {"email": "b@example.com"}).status_code == 201
    throttled = patch(server, {"email": "c@example.com"})
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    clock.advance(1.0)
    assert patch(server, {"email": "c@example.com"}).status_code == 201


def test_scripted_replies_answer_first(server: RunningServer, fake: VtexFake) -> None:
    fake.script([503])
    assert patch(server, {"email": "ada@example.com"}).status_code == 503
    assert patch(server, {"email": "ada@example.com"}).status_code == 201
    assert fake.statuses() == [503, 201]
