"""The Google Ads plugin's pure part: settings, the grant, the requests it builds (a Customer
Match job per user list and batch, click conversions) and how it reads Google's answers."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from google_ads_helpers import OPTIONS, conversion, item, membership

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    FollowUp,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.google_ads import GoogleAdsDestination, GoogleAdsSettings

SETTINGS = {"customer_id": "123-456-7890", "login_customer_id": "987-654-3210",
            "developer_token": "dtok", "client_id": "cid", "client_secret": "csec",
            "refresh_token": "rtok"}
BASE = "https://googleads.googleapis.com/v26/customers/1234567890"


def plugin(options: dict[str, Any] | None = None, **more: Any) -> GoogleAdsDestination:
    shipped = GoogleAdsDestination.default_mapping()
    shipped["options"] = {**shipped["options"], **OPTIONS, **(options or {})}
    return GoogleAdsDestination(GoogleAdsSettings.model_validate({**SETTINGS, **more}),
                                shipped)


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_grant_is_a_refresh_token_at_googles_token_endpoint() -> None:
    request = plugin().token_grant().token_request(0.0)
    assert str(request.url) == "https://oauth2.googleapis.com/token"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["refresh_token"], "refresh_token": ["rtok"], "client_id": ["cid"],
        "client_secret": ["csec"]}


@pytest.mark.parametrize(("raw", "problem"), [
    ({**SETTINGS, "customer_id": "123-456"},
     "settings.customer_id: a Google Ads customer id: ten digits (123-456-7890)"),
    ({**SETTINGS, "login_customer_id": "x"},
     "settings.login_customer_id: a Google Ads customer id: ten digits (123-456-7890)"),
    ({**SETTINGS, "api_version": "26"},
     "settings.api_version: an API version as the URL names it: vNN (v26)"),
])
def test_bad_settings_are_named_by_field(raw: dict[str, Any], problem: str) -> None:
    settings, problems = GoogleAdsDestination.parse_settings(raw)
    assert settings is None and problem in problems, problems


def test_a_user_list_id_must_be_digits() -> None:
    problems = GoogleAdsDestination.options_problems({"user_lists": {"vip": "list/1"}},
                                                     "mapping.options")
    assert problems == ["mapping.options.user_lists: vip: an id is digits only (the number "
                        "in the UI or the resource name)"]


def test_membership_changes_start_a_customer_match_job_with_the_headers() -> None:
    items = [item(membership(1, phone="(650) 555-1212", firstName="Ada", lastName="L",
                             country="us", postalCode="94043"), 1),
             item(membership(2, event="audience_exited"), 2)]
    (create,) = plugin({"ad_user_data": "GRANTED"}).build_requests(items)
    assert isinstance(create, PlannedRequest) and create.step == "create"
    request = create.request
    assert str(request.url) == BASE + "/offlineUserDataJobs:create"
    assert request.headers["developer-token"] == "dtok"
    assert request.headers["login-customer-id"] == "9876543210"
    assert json.loads(request.content) == {"job": {
        "type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
            "userList": "customers/1234567890/userLists/555",
            "consent": {"adUserData": "GRANTED"}}}}
    # The job's answer leads to the operations, normalized and hashed by Google's rules.
    answer = httpx.Response(200, json={
        "resourceName": "customers/1234567890/offlineUserDataJobs/42"}, request=request)
    add = plugin().classify(create, answer)
    assert isinstance(add, FollowUp)
    assert str(add.request.url) == BASE + "/offlineUserDataJobs/42:addOperations"
    assert json.loads(add.request.content) == {"enablePartialFailure": False, "operations": [
        {"create": {"userIdentifiers": [
            {"hashedEmail": h("ada1@gmail.com")}, {"hashedPhoneNumber": h("+16505551212")},
            {"addressInfo": {"hashedFirstName": h("ada"), "hashedLastName": h("l"),
                             "countryCode": "US", "postalCode": "94043"}}]}},
        {"remove": {"userIdentifiers": [{"hashedEmail": h("ada2@gmail.com")}]}}]}
    added = PlannedRequest(add.request, create.items, step=add.step)
    run = plugin().classify(added, httpx.Response(200, json={}, request=add.request))
    assert isinstance(run, FollowUp)
    assert str(run.request.url) == BASE + "/offlineUserDataJobs/42:run"
    done = PlannedRequest(run.request, create.items, step=run.step)
    assert plugin().classify(done, httpx.Response(200, json={"name": "op"})) == DELIVERED


def test_each_user_list_gets_its_own_job_and_unmatched_people_are_named() -> None:
    planned = plugin({"user_lists": {"high_value": "555", "churned": "556"}}).build_requests([
        item(membership(1), 1), item(membership(2, audience="churned"), 2),
        item(membership(3, audience="unknown"), 3),
        item(membership(4, phone="12", firstName="Ada"), 4),
        item(membership(5, email=None), 5)])
    creates = [p for p in planned if isinstance(p, PlannedRequest)]
    assert [json.loads(p.request.content)["job"]["customerMatchUserListMetadata"]["userList"]
            for p in creates] == ["customers/1234567890/userLists/555",
                                  "customers/1234567890/userLists/556"]
    assert sorted(p.reason for p in planned if isinstance(p, Rejected)) == [
        "audience 'unknown': no Customer Match user list for it in options.user_lists",
        "no identifier Customer Match can match: an email, a phone or a full address (first "
        "and last name, country, postal code)"]
    refused = sorted(p.field for p in planned if isinstance(p, FieldRefused))
    assert refused == ["address", "phone"]


def test_conversions_carry_googles_time_format_value_and_currency() -> None:
    (upload,) = plugin().build_requests([item(conversion(1), 1)])
    assert isinstance(upload, PlannedRequest)
    assert str(upload.request.url) == BASE + ":uploadClickConversions"
    assert json.loads(upload.request.content) == {"partialFailure": True, "conversions": [{
        "gclid": "Cj0gclid1", "conversionAction": "customers/1234567890/conversionActions/777",
        "conversionDateTime": "2024-05-01 12:30:05+02:00", "conversionValue": 42.5,
        "currencyCode": "EUR", "orderId": "o1"}]}


def test_what_cannot_be_a_conversion_is_rejected_by_its_field() -> None:
    planned = plugin().build_requests([
        item(conversion(1, gclid=None), 1), item(conversion(2, currency="euro"), 2),
        item(conversion(3, value="lots"), 3)])
    assert sorted(p.reason for p in planned if isinstance(p, Rejected)) == [
        "currency: an ISO 4217 code of three letters",
        "gclid: none of properties.gclid, context.gclid holds one (a click conversion needs "
        "the click's id)",
        "value: not a number"]


def _conversions(n: int) -> PlannedRequest:
    (upload,) = plugin().build_requests([item(conversion(i), i) for i in range(1, n + 1)])
    assert isinstance(upload, PlannedRequest)
    return upload


def test_a_partial_failure_fails_only_the_rows_it_names() -> None:
    upload = _conversions(3)
    body = {"results": [{}, {"gclid": "x"}, {}], "partialFailureError": {
        "code": 3, "message": "2 failed", "details": [{"errors": [
            {"errorCode": {"conversionUploadError": "UNPARSEABLE_GCLID"},
             "message": "The click ID could not be decoded.",
             "location": {"fieldPathElements": [{"fieldName": "conversions", "index": 0}]}},
            {"errorCode": {"dateError": "INVALID_FIELD_FORMAT"}, "message": "bad time",
             "location": {"fieldPathElements": [{"fieldName": "conversions", "index": 2},
                                                {"fieldName": "conversion_date_time"}]}}]}]}}
    outcomes = plugin().classify(upload, httpx.Response(200, json=body))
    assert outcomes == [
        Failed("conversionUploadError.UNPARSEABLE_GCLID: The click ID could not be decoded."),
        DELIVERED, Failed("dateError.INVALID_FIELD_FORMAT: bad time")]


def test_errors_are_read_from_googles_status() -> None:
    upload = _conversions(1)

    def answer(status: int, code: dict[str, str], message: str = "m") -> Any:
        body = {"error": {"code": status, "message": "x", "status": "INVALID_ARGUMENT",
                          "details": [{"errors": [{"errorCode": code, "message": message}]}]}}
        return plugin().classify(upload, httpx.Response(status, json=body))

    assert answer(400, {"databaseError": "CONCURRENT_MODIFICATION"}) == Retry(
        "HTTP 400 INVALID_ARGUMENT: databaseError.CONCURRENT_MODIFICATION: m")
    assert answer(403, {"authorizationError": "USER_PERMISSION_DENIED"}) == Failed(
        "HTTP 403 INVALID_ARGUMENT: authorizationError.USER_PERMISSION_DENIED: m")
    assert isinstance(answer(429, {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"}), Retry)
    assert plugin().classify(upload, httpx.Response(503, text="down")) == Retry(
        "HTTP 503: down")


def test_other_events_are_rejected() -> None:
    (only,) = plugin().build_requests([item(conversion(1) | {"event": "Clicked"}, 1)])
    assert only == Rejected(only.item, "google_ads takes audience_entered / audience_exited "
                            "and the events of options.conversion_actions, not 'Clicked'")
