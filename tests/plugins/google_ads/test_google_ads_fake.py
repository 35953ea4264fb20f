"""The Google Ads contract fake refuses what Google refuses (docs/destinations/google_ads.md):
each rule over real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from crossdock.plugins.google_ads.fake import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_DEVELOPER_TOKEN,
    DEFAULT_MANAGER,
    DEFAULT_REFRESH_TOKEN,
    TOKEN_LIFETIME,
    TOKEN_PATH,
    GoogleAdsFake,
)
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer

CID = "/v26/customers/1234567890"
GRANT = {"grant_type": "refresh_token", "refresh_token": DEFAULT_REFRESH_TOKEN,
         "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
EMAIL = {"hashedEmail": hashlib.sha256(b"ada@gmail.com").hexdigest()}


def token(server: RunningServer, **form: str) -> httpx.Response:
    return httpx.post(server.url + TOKEN_PATH, data={**GRANT, **form})


def headers(server: RunningServer, **more: str) -> dict[str, str]:
    access = token(server).json()["access_token"]
    out = {"Authorization": f"Bearer {access}", "developer-token": DEFAULT_DEVELOPER_TOKEN,
           "login-customer-id": DEFAULT_MANAGER, **more}
    return {k: v for k, v in out.items() if v}


def code(response: httpx.Response) -> tuple[int, str]:
    error = response.json()["error"]
    (value,) = error["details"][0]["errors"][0]["errorCode"].values()
    return response.status_code, value


def test_the_token_route_takes_a_refresh_token_form(server: RunningServer) -> None:
    answer = token(server).json()
    assert answer["expires_in"] == TOKEN_LIFETIME == 3599 and answer["token_type"] == "Bearer"
    assert token(server, refresh_token="revoked").json()["error"] == "invalid_grant"
    wrong = token(server, client_secret="nope")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert token(server, grant_type="password").json()["error"] == "unsupported_grant_type"
    as_json = httpx.post(server.url + TOKEN_PATH, json=GRANT)
    assert as_json.json()["error"] == "invalid_request"


def test_api_calls_need_a_live_token_the_developer_token_and_the_manager(
        server: RunningServer, clock: ManualClock) -> None:
    url = server.url + CID + "/offlineUserDataJobs:create"
    job = {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
        "userList": "customers/1234567890/userLists/555"}}}
    good = headers(server)
    assert httpx.post(url, json=job).status_code == 401
    assert code(httpx.post(url, json=job, headers=headers(server, **{
        "developer-token": ""}))) == (400, "DEVELOPER_TOKEN_PARAMETER_MISSING")
    assert code(httpx.post(url, json=job, headers=headers(server, **{
        "developer-token": "x"}))) == (401, "DEVELOPER_TOKEN_INVALID")
    assert code(httpx.post(url, json=job, headers=headers(server, **{
        "login-customer-id": ""}))) == (403, "USER_PERMISSION_DENIED")
    assert code(httpx.post(url.replace("1234567890", "1111111111"), json=job,
                           headers=good)) == (403, "USER_PERMISSION_DENIED")
    assert httpx.post(url, json=job, headers=good).status_code == 200
    clock.advance(TOKEN_LIFETIME)
    assert httpx.post(url, json=job, headers=good).status_code == 401


def test_a_job_takes_valid_operations_once_and_runs_once(server: RunningServer,
                                                         fake: GoogleAdsFake) -> None:
    h = headers(server)

    def post(path: str, body: Any) -> httpx.Response:
        return httpx.post(server.url + path, json=body, headers=h)

    assert code(post(CID + "/offlineUserDataJobs:create", {"job": {
        "type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
            "userList": "customers/1234567890/userLists/999"}}})) == (
        400, "INVALID_USER_LIST_ID")
    job = post(CID + "/offlineUserDataJobs:create", {"job": {
        "type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
            "userList": "customers/1234567890/userLists/555"}}}).json()["resourceName"]
    add = f"/v26/{job}:addOperations"
    assert code(post(add, {"operations": [{"create": {"userIdentifiers": [
        {"hashedEmail": "ADA@GMAIL.COM"}]}}]})) == (400, "INVALID_SHA256_FORMAT")
    assert code(post(add, {"operations": [{"create": {"userIdentifiers": [EMAIL] * 21}}]})
                ) == (400, "TOO_MANY_USER_IDENTIFIERS")
    assert code(post(add, {"operations": [{"create": {"userIdentifiers": [
        {"addressInfo": {"hashedFirstName": EMAIL["hashedEmail"], "countryCode": "US"}}]}}
    ]})) == (400, "INCOMPLETE_ADDRESS")
    partial = post(add, {"enablePartialFailure": True, "operations": [
        {"create": {"userIdentifiers": [{"hashedEmail": "nope"}]}},
        {"create": {"userIdentifiers": [EMAIL]}}]}).json()
    errors = partial["partialFailureError"]["details"][0]["errors"]
    assert [e["location"]["fieldPathElements"][0]["index"] for e in errors] == [0]
    assert fake.members() == []  # nothing until the job runs
    assert post(f"/v26/{job}:run", {}).status_code == 200
    assert fake.members() == [EMAIL]
    assert code(post(f"/v26/{job}:run", {})) == (400, "INVALID_JOB_STATUS")
    assert code(post(add, {"operations": [{"remove": {"userIdentifiers": [EMAIL]}}]})) == (
        400, "INVALID_JOB_STATUS")


def test_click_conversions_are_checked_row_by_row(server: RunningServer,
                                                  fake: GoogleAdsFake) -> None:
    url = server.url + CID + ":uploadClickConversions"
    good = {"gclid": "Cj0abc", "conversionAction": "customers/1234567890/conversionActions/777",
            "conversionDateTime": "2024-05-01 12:30:05+02:00", "conversionValue": 1.0,
            "currencyCode": "EUR"}
    h = headers(server)
    assert httpx.post(url, json={"conversions": [good]}, headers=h).status_code == 400
    rows = [good, {**good, "gclid": "unknown-1"},
            {**good, "conversionDateTime": "2024-05-01T12:30:05Z"},
            {**good, "conversionAction": "customers/1234567890/conversionActions/1"},
            {**good, "currencyCode": "euro"}]
    answer = httpx.post(url, json={"conversions": rows, "partialFailure": True},
                        headers=h).json()
    errors = answer["partialFailureError"]["details"][0]["errors"]
    assert [(e["location"]["fieldPathElements"][0]["index"], *e["errorCode"].values())
            for e in errors] == [(1, "UNPARSEABLE_GCLID"), (2, "INVALID_FIELD_FORMAT"),
                                 (3, "INVALID_CONVERSION_ACTION"), (4, "INVALID_CURRENCY_CODE")]
    assert len(fake.conversions) == 1
    many = httpx.post(url, json={"conversions": [good] * 2001, "partialFailure": True},
                      headers=h)
    assert code(many) == (400, "TOO_MANY_OPERATIONS")


def test_too_many_requests_are_throttled(server: RunningServer, fake: GoogleAdsFake) -> None:
    h = headers(server)
    fake.rate_limit = 1
    url = server.url + CID + ":uploadClickConversions"
    answers = [httpx.post(url, json={"conversions": [], "partialFailure": True}, headers=h)
               for _ in range(2)]
    assert code(answers[1]) == (429, "RESOURCE_TEMPORARILY_EXHAUSTED")
    assert answers[1].headers["Retry-After"] == "1"


def test_secrets_are_never_recorded(server: RunningServer, fake: GoogleAdsFake) -> None:
    token(server)
    assert fake.received[0]["body"] == {"grant_type": ["refresh_token"]}
    assert DEFAULT_REFRESH_TOKEN not in str(fake.received)
