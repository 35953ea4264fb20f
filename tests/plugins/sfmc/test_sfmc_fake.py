"""The SFMC contract fake refuses what Marketing Cloud refuses (docs/destinations/sfmc.md):
each rule over real HTTP, so the plugin's tests against it mean something."""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.plugins.sfmc.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SfmcFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer

CLIENT = {"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
          "client_secret": DEFAULT_CLIENT_SECRET}
ROWSET = "/hub/v1/dataevents/key:Crossdock_Contacts/rowset"


def token(server: RunningServer, **more: Any) -> httpx.Response:
    return httpx.post(server.url + "/v2/token", json={**CLIENT, **more})


def bearer(server: RunningServer) -> dict[str, str]:
    response = token(server)
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def test_the_token_route_takes_the_integration_in_json_and_answers_the_rest_host(
        server: RunningServer) -> None:
    answer = token(server, account_id="514009999").json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 1079
    assert answer["rest_instance_url"] == server.url + "/"
    form = httpx.post(server.url + "/v2/token", data=CLIENT)
    assert (form.status_code, form.json()["error"]) == (400, "invalid_request")
    wrong = token(server, client_secret="nope")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    other_mid = token(server, account_id="1")
    assert other_mid.status_code == 401
    grant = token(server, grant_type="password")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")


def test_rest_routes_take_only_a_live_token(server: RunningServer, fake: SfmcFake,
                                            clock: ManualClock) -> None:
    row = [{"keys": {"ContactKey": "u1"}, "values": {}}]
    assert httpx.post(server.url + ROWSET, json=row).status_code == 401
    headers = bearer(server)
    assert httpx.post(server.url + ROWSET, json=row, headers=headers).status_code == 200
    clock.advance(1079)  # twenty minutes later
    expired = httpx.post(server.url + ROWSET, json=row, headers=headers)
    assert (expired.status_code, expired.json()["message"]) == (401, "Not Authorized")


def test_a_rowset_saves_the_rows_before_the_first_bad_one_and_none_after(
        server: RunningServer, fake: SfmcFake) -> None:
    rows = [{"keys": {"ContactKey": "u1"}, "values": {"LifetimeValue": 5}},
            {"keys": {"ContactKey": "u2"}, "values": {"LifetimeValue": "lots"}},
            {"keys": {"ContactKey": "u3"}, "values": {}}]
    answer = httpx.post(server.url + ROWSET, json=rows, headers=bearer(server))
    assert answer.status_code == 400
    body = answer.json()
    assert body["errorcode"] == 10006
    assert body["additionalErrors"][0]["message"] == (
        "row 1: the value for column [LifetimeValue] is not a valid Number")
    assert [r["ContactKey"] for r in fake.rows("Crossdock_Contacts")] == ["u1"]


def test_rowset_shapes_columns_and_sizes_are_checked(server: RunningServer,
                                                     fake: SfmcFake) -> None:
    headers = bearer(server)

    def post(body: Any, path: str = ROWSET) -> httpx.Response:
        return httpx.post(server.url + path, json=body, headers=headers)

    assert post([{"keys": {"Email": "x"}}]).json()["additionalErrors"][0]["message"].startswith(
        "row 0: keys must be exactly the primary key columns")
    assert "[Nickname] does not exist" in post(
        [{"keys": {"ContactKey": "u"}, "values": {"Nickname": "x"}}]).text
    assert "not a valid EmailAddress" in post(
        [{"keys": {"ContactKey": "u"}, "values": {"EmailAddress": "not-an-email"}}]).text
    many = [{"keys": {"ContactKey": f"u{n}"}} for n in range(51)]
    assert (post(many).status_code, post(many).json()["message"]) == (
        400, "at most 50 rows per call")
    assert post([]).status_code == 400
    assert post([{"keys": {"ContactKey": "u"}}],
                "/hub/v1/dataevents/key:Nope/rowset").status_code == 404
    fake.lock_next()
    locked = post([{"keys": {"ContactKey": "u"}}]).json()
    assert locked["errorcode"] == 10006 and "additionalErrors" not in locked


def test_entry_events_need_a_known_key_and_an_active_contact(server: RunningServer,
                                                             fake: SfmcFake) -> None:
    headers = bearer(server)

    def post(**body: Any) -> httpx.Response:
        event = {"ContactKey": "u1", "EventDefinitionKey": "Crossdock-Events", "Data": {},
                 **body}
        return httpx.post(server.url + "/interaction/v1/events", json=event, headers=headers)

    created = post()
    assert created.status_code == 201 and created.json()["eventInstanceId"]
    assert "not found" in post(EventDefinitionKey="Unknown").text
    assert post(EventDefinitionKey="Crossdock.Events").status_code == 400
    assert post(ContactKey="").status_code == 400
    assert post(Data=[1]).status_code == 400
    fake.inactive.add("u9")
    assert post(ContactKey="u9").json()["message"] == "The contact is not active"


def test_a_client_asking_for_too_many_tokens_is_throttled(server: RunningServer,
                                                          fake: SfmcFake) -> None:
    fake.token_rate_limit = 2
    assert [token(server).status_code for _ in range(3)] == [200, 200, 429]


def test_the_client_secret_is_never_recorded(server: RunningServer, fake: SfmcFake) -> None:
    token(server)
    (entry,) = fake.received
    assert entry["body"] == {"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID}
