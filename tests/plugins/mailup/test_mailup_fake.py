"""The MailUp contract fake refuses what MailUp refuses (docs/destinations/mailup.md): each rule
over real HTTP, so the plugin's tests against it mean something."""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.plugins.mailup.fake import (
    CONSOLE,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    DEFAULT_REFRESH,
    DEFAULT_USERNAME,
    PENDING,
    SUBSCRIBED,
    TOKEN_PATH,
    UNSUBSCRIBED,
    MailUpFake,
)
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer

CLIENT = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
PASSWORD = {"grant_type": "password", "username": DEFAULT_USERNAME,
            "password": DEFAULT_PASSWORD, **CLIENT}
RECIPIENT = CONSOLE + "/Console/List/1/Recipient"


def token(server: RunningServer, **form: Any) -> httpx.Response:
    return httpx.post(server.url + TOKEN_PATH, data={**PASSWORD, **form})


def bearer(server: RunningServer) -> dict[str, str]:
    response = token(server)
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def test_the_password_grant_answers_a_token_and_a_refresh_token(server: RunningServer) -> None:
    answer = token(server).json()
    assert answer["expires_in"] == 3600 and answer["access_token"] and answer["refresh_token"]
    wrong = token(server, password="nope")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    client = token(server, client_secret="nope")
    assert (client.status_code, client.json()["error"]) == (401, "invalid_client")
    grant = token(server, grant_type="client_credentials")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    as_json = httpx.post(server.url + TOKEN_PATH, json=PASSWORD)
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")


def test_a_refresh_token_works_once_and_its_renewal_then(server: RunningServer) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": DEFAULT_REFRESH, **CLIENT}
    first = httpx.post(server.url + TOKEN_PATH, data=form)
    assert first.status_code == 200
    again = httpx.post(server.url + TOKEN_PATH, data=form)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    renewed = httpx.post(server.url + TOKEN_PATH,
                         data={**form, "refresh_token": first.json()["refresh_token"]})
    assert renewed.status_code == 200


def test_console_routes_take_only_a_live_token(server: RunningServer,
                                               clock: ManualClock) -> None:
    ada = {"Email": "ada@example.com", "Name": "", "Fields": []}
    none = httpx.post(server.url + RECIPIENT, json=ada)
    assert none.status_code == 401
    assert none.json()["ErrorDescription"] == "Authorization error: Invalid access token"
    headers = bearer(server)
    assert httpx.post(server.url + RECIPIENT, json=ada, headers=headers).status_code == 200
    clock.advance(3600)
    expired = httpx.post(server.url + RECIPIENT, json=ada, headers=headers)
    assert expired.status_code == 401 and expired.json() == {
        "ErrorCode": "401", "ErrorDescription": "Authorization error: Access token is expired",
        "ErrorName": "Unauthorized", "ErrorStack": None}


def test_recipient_shapes_fields_and_lists_are_checked(server: RunningServer) -> None:
    headers = bearer(server)

    def post(body: Any, path: str = RECIPIENT) -> httpx.Response:
        return httpx.post(server.url + path, json=body, headers=headers)

    def refused(body: Any, path: str = RECIPIENT) -> str:
        answer = post(body, path)
        assert answer.status_code == 400, answer.text
        return str(answer.json()["ErrorDescription"])

    assert refused({"Email": "not-an-email"}) == "Invalid email address"
    assert refused({"Email": "a@example.com", "Name": None}).startswith("Name must be")
    assert refused({"Email": "a@example.com", "Fields": [{"Id": 40, "Value": "x"}]}) == (
        "Field 40 does not exist in the account")
    assert refused({"Email": "a@example.com", "Fields": [{"Id": 1, "Value": 3}]}) == (
        "Field 1: Value must be a string")
    assert refused({"Email": "a@example.com", "Fields": [{"Id": 1, "Value": "x" * 201}]}) == (
        "Field 1: at most 200 characters")
    assert refused({"Email": "a@example.com", "MobilePrefix": "39",
                    "MobileNumber": "3471234567"}).startswith("MobilePrefix")
    assert refused({"Email": "a@example.com"}, CONSOLE + "/Console/List/9/Recipient") == (
        "List 9 does not exist")
    assert refused({"Email": "a@example.com"}, CONSOLE + "/Console/Group/99/Recipient") == (
        "Group 99 does not exist")
    created = post({"Email": "a@example.com", "Fields": [{"Id": 1, "Value": "x" * 200}]})
    assert created.status_code == 200 and isinstance(created.json(), int)


def test_email_and_mobile_number_are_keys(server: RunningServer, fake: MailUpFake) -> None:
    headers = bearer(server)

    def post(email: str, number: str) -> httpx.Response:
        return httpx.post(server.url + RECIPIENT, headers=headers, json={
            "Email": email, "MobilePrefix": "0039", "MobileNumber": number})

    assert post("a@example.com", "3471234567").status_code == 200
    assert post("a@example.com", "3471234567").status_code == 200  # the same keys: updated
    other = post("b@example.com", "3471234567")  # a's number
    assert other.status_code == 400 and other.json()["ErrorDescription"].startswith(
        "Key mismatch")
    assert post("a@example.com", "3330000000").status_code == 400  # a's number changed
    assert fake.recipient("b@example.com") is None
    held = fake.recipient("a@example.com")
    assert held is not None and (held["MobilePrefix"], held["MobileNumber"]) == (
        "+39", "3471234567")


def test_subscription_follows_mailups_scenarios(server: RunningServer, fake: MailUpFake) -> None:
    headers = bearer(server)

    def post(email: str, confirm: str = "false", list_id: int = 1, **more: Any) -> int:
        answer = httpx.post(server.url + CONSOLE + f"/Console/List/{list_id}/Recipient",
                            params={"ConfirmEmail": confirm}, headers=headers,
                            json={"Email": email, **more})
        assert answer.status_code == 200, answer.text
        return int(answer.json())

    def status(email: str, list_id: int = 1) -> str | None:
        held = fake.recipient(email)
        return None if held is None else held["Lists"].get(list_id)

    post("new@example.com")
    assert status("new@example.com") == SUBSCRIBED
    post("coi@example.com", "true")
    assert status("coi@example.com") == PENDING
    assert fake.confirmations == [(1, "coi@example.com")]
    post("elsewhere@example.com", list_id=2)
    post("elsewhere@example.com")
    assert status("elsewhere@example.com") == SUBSCRIBED
    fake.add("gone@example.com", 1, UNSUBSCRIBED)
    post("gone@example.com", Fields=[{"Id": 1, "Value": "Gone"}])
    held = fake.recipient("gone@example.com")
    assert held is not None and held["Lists"][1] == UNSUBSCRIBED  # not forced back
    assert held["Fields"][0]["Value"] == "Gone"  # its personal data updated
    group = httpx.post(server.url + CONSOLE + "/Console/Group/10/Recipient", headers=headers,
                       json={"Email": "grouped@example.com"})
    assert group.status_code == 200
    grouped = fake.recipient("grouped@example.com")
    assert grouped is not None and (grouped["Lists"], grouped["Groups"]) == (
        {1: SUBSCRIBED}, [10])


def test_subscribers_are_read_by_email_and_unsubscribed_by_id(server: RunningServer,
                                                              fake: MailUpFake) -> None:
    headers = bearer(server)
    ada = fake.add("o'neil@example.com", 1)
    fake.add("xo'neil@example.com", 1)
    fake.add("left@example.com", 1, UNSUBSCRIBED)

    def subscribed(filterby: str, **more: str) -> httpx.Response:
        return httpx.get(server.url + CONSOLE + "/Console/List/1/Recipients/Subscribed",
                         params={"filterby": filterby, **more}, headers=headers)

    page = subscribed("\"Email.Contains('o''neil@example.com')\"", pageSize="1").json()
    assert (page["TotalElementsCount"], page["PageSize"], len(page["Items"])) == (2, 1, 1)
    assert page["Items"][0]["idRecipient"] == ada
    assert subscribed("\"Email.Contains('left@example.com')\"").json()["Items"] == []
    assert subscribed("Email == 'x'").status_code == 400
    gone = httpx.delete(server.url + CONSOLE + f"/Console/List/1/Unsubscribe/{ada}",
                        headers=headers)
    assert gone.status_code == 200
    held = fake.recipient("o'neil@example.com")
    assert held is not None and held["Lists"][1] == UNSUBSCRIBED
    assert httpx.delete(server.url + CONSOLE + "/Console/List/2/Unsubscribe/1",
                        headers=headers).status_code == 400


def test_the_accounts_fields_are_listed(server: RunningServer) -> None:
    answer = httpx.get(server.url + CONSOLE + "/Console/Recipient/DynamicFields",
                       headers=bearer(server)).json()
    assert answer["Items"][:2] == [{"Description": "FirstName", "Id": 1},
                                   {"Description": "LastName", "Id": 2}]
    assert answer["TotalElementsCount"] == 26


def test_too_many_requests_are_throttled(server: RunningServer, fake: MailUpFake) -> None:
    headers = bearer(server)
    fake.rate_limit = 2
    statuses = [httpx.post(server.url + RECIPIENT, headers=headers,
                           json={"Email": "a@example.com"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_the_secrets_are_never_recorded(server: RunningServer, fake: MailUpFake) -> None:
    token(server)
    (entry,) = fake.received
    assert entry["body"] == {"grant_type": "password", "username": DEFAULT_USERNAME,
                             "client_id": DEFAULT_CLIENT_ID}
