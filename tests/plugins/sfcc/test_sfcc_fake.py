"""The SFCC contract fake refuses what Commerce Cloud refuses (docs/destinations/sfcc.md):
each rule over real HTTP, so the plugin's tests against it mean something."""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.kit import basic_auth
from crossdock.plugins.sfcc.fake import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    TOKEN_LIFETIME,
    TOKEN_PATH,
    SfccFake,
)
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer

CUSTOMER = "/s/-/dw/data/v23_2/customer_lists/RefArch/customers/"
BASIC = {"Authorization": basic_auth(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)}


def token(server: RunningServer, headers: dict[str, str] | None = None,
          **form: str) -> httpx.Response:
    return httpx.post(server.url + TOKEN_PATH, headers=BASIC if headers is None else headers,
                      data={"grant_type": "client_credentials", **form})


def bearer(server: RunningServer) -> dict[str, str]:
    response = token(server)
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def fault_type(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["fault"]["type"]


def test_the_token_route_takes_a_form_and_the_client_as_basic(server: RunningServer) -> None:
    answer = token(server).json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == TOKEN_LIFETIME == 1799
    assert "refresh_token" not in answer
    as_json = httpx.post(server.url + TOKEN_PATH, headers=BASIC,
                         json={"grant_type": "client_credentials"})
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    in_body = token(server, headers={}, client_id=DEFAULT_CLIENT_ID,
                    client_secret=DEFAULT_CLIENT_SECRET)
    assert (in_body.status_code, in_body.json()["error"]) == (401, "invalid_client")
    wrong = token(server, headers={"Authorization": basic_auth(DEFAULT_CLIENT_ID, "nope")})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    grant = token(server, grant_type="password")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")


def test_the_data_api_takes_only_a_live_bearer_token(server: RunningServer,
                                                     clock: ManualClock) -> None:
    url = server.url + CUSTOMER + "u1"
    assert fault_type(httpx.patch(url, json={})) == (401, "AuthorizationHeaderMissingException")
    assert fault_type(httpx.patch(url, json={}, headers=BASIC)) == (
        401, "InvalidAuthorizationHeaderException")
    assert fault_type(httpx.patch(url, json={}, headers={"Authorization": "Bearer x"})) == (
        401, "InvalidAccessTokenException")
    headers = bearer(server)
    assert httpx.patch(url, json={}, headers=headers).status_code == 200
    clock.advance(TOKEN_LIFETIME)  # thirty minutes later
    assert fault_type(httpx.patch(url, json={}, headers=headers)) == (
        401, "InvalidAccessTokenException")


def test_versions_lists_and_customers_must_exist(server: RunningServer) -> None:
    headers = bearer(server)

    def patch(path: str) -> httpx.Response:
        return httpx.patch(server.url + path, json={}, headers=headers)

    assert fault_type(patch(CUSTOMER.replace("v23_2", "23.2") + "u1")) == (
        400, "InvalidVersionException")
    assert fault_type(patch(CUSTOMER.replace("v23_2", "v99_9") + "u1")) == (
        404, "VersionNotFoundException")
    assert fault_type(patch(CUSTOMER.replace("RefArch", "Nope") + "u1")) == (
        404, "CustomerListNotFoundException")
    missing = patch(CUSTOMER + "stranger")
    assert fault_type(missing) == (404, "CustomerNotFoundException")
    assert missing.json()["fault"]["arguments"] == {"customerNo": "stranger"}


def test_properties_are_checked_against_the_customer_document(server: RunningServer,
                                                              fake: SfccFake) -> None:
    headers = bearer(server)

    def patch(body: Any, **more: Any) -> httpx.Response:
        return httpx.patch(server.url + CUSTOMER + "u1", json=body, headers=headers, **more)

    assert fault_type(patch({"nickname": "x"})) == (400, "UnknownPropertyException")
    assert fault_type(patch({"creation_date": "2020-01-01"})) == (
        400, "PropertyNotPermittedException")
    assert fault_type(patch({"customer_no": "u2"})) == (400, "PropertyNotPermittedException")
    assert fault_type(patch({"phone_mobile": "1" * 33})) == (
        400, "PropertyConstraintViolationException")
    assert fault_type(patch({"email": 5})) == (400, "TypeDecodingException")
    assert fault_type(patch({"birthday": "07/04/1990"})) == (400, "TypeDecodingException")
    assert fault_type(patch({"gender": "female"})) == (400, "TypeDecodingException")
    assert fault_type(patch({"c_unknown": "x"})) == (400, "InvalidCustomPropertyException")
    assert fault_type(patch({"c_lifetimeValue": "lots"})) == (
        400, "InvalidCustomPropertyException")
    assert fault_type(patch({"_v": "21.3"})) == (400, "UnexpectedVersionException")
    assert fault_type(patch([1])) == (400, "BodyDecodingException")
    assert fault_type(httpx.patch(server.url + CUSTOMER + "u1", content=b"email=x",
                                  headers={**headers, "Content-Type": "text/plain"})) == (
        415, "UnsupportedContentTypeException")
    assert fake.customer("u1") == {"customer_no": "u1"}  # nothing refused was written
    done = patch({"_v": "23.2", "email": "ada@example.com", "birthday": "1990-07-04",
                  "gender": 2, "c_lifetimeValue": 12.5, "c_smsOptIn": True})
    assert done.status_code == 200 and done.json()["email"] == "ada@example.com"
    assert fake.customer("u1") == {"customer_no": "u1", "email": "ada@example.com",
                                   "birthday": "1990-07-04", "gender": 2,
                                   "c_lifetimeValue": 12.5, "c_smsOptIn": True}
    read = httpx.get(server.url + CUSTOMER + "u1", headers=headers).json()
    assert read["c_smsOptIn"] is True


def test_a_body_over_5_mb_is_too_large(server: RunningServer) -> None:
    big = httpx.patch(server.url + CUSTOMER + "u1", headers=bearer(server),
                      json={"c_loyaltyTier": "x" * (5 * 1024 * 1024)})
    assert fault_type(big) == (413, "RequestEntityTooLargeException")


def test_too_many_requests_are_throttled(server: RunningServer, fake: SfccFake) -> None:
    fake.token_rate_limit = 2
    assert [token(server).status_code for _ in range(3)] == [200, 200, 429]
    fake.token_rate_limit = None
    headers = bearer(server)
    fake.rate_limit = 1
    answers = [httpx.patch(server.url + CUSTOMER + "u1", json={}, headers=headers)
               for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].headers["Retry-After"]


def test_the_client_password_is_never_recorded(server: RunningServer, fake: SfccFake) -> None:
    token(server)
    (entry,) = fake.received
    assert entry["body"] == "grant_type=client_credentials"
    assert DEFAULT_CLIENT_SECRET not in str(fake.received)
