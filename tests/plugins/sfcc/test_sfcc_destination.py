"""The SFCC plugin's pure part: settings, the grant it declares, the requests it builds and how
it reads Commerce Cloud's faults (no I/O; the fake is in the other test modules)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from sfcc_helpers import OPTIONS, item

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.sfcc import SfccDestination, SfccSettings

SETTINGS = {"instance": "zzxy-001.dx.commercecloud.salesforce.com", "client_id": "cid",
            "client_secret": "csecret", "customer_list": "RefArch"}


def plugin(options: dict[str, Any] | None = None, **more: Any) -> SfccDestination:
    shipped = SfccDestination.default_mapping()
    shipped["options"] = {**shipped["options"], **OPTIONS, **(options or {})}
    return SfccDestination(SfccSettings.model_validate({**SETTINGS, **more}), shipped)


def planned(options: dict[str, Any] | None = None, *items: Any) -> list[Any]:
    return plugin(options).build_requests(list(items))


def test_the_grant_is_client_credentials_with_basic_auth_at_account_manager() -> None:
    request = plugin().token_grant().token_request(0.0)
    assert str(request.url) == "https://account.demandware.com/dwsso/oauth2/access_token"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.content == b"grant_type=client_credentials"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(
        b"cid:csecret").decode()


@pytest.mark.parametrize(("raw", "problem"), [
    ({k: v for k, v in SETTINGS.items() if k != "instance"},
     "settings: give either instance or base_url (one of them)"),
    ({**SETTINGS, "base_url": "https://x.example.com"},
     "settings: give either instance or base_url (one of them)"),
    ({**SETTINGS, "instance": "https://zzxy-001.dx.commercecloud.salesforce.com/"},
     "settings.instance: a hostname only (zzxy-001.dx.commercecloud.salesforce.com), no "
     "scheme or path"),
    ({**SETTINGS, "api_version": "23.2"},
     "settings.api_version: an OCAPI version as the URL names it: v<YY>_<N> (v23_2)"),
    ({**SETTINGS, "customer_list": " "}, "settings.customer_list: must not be blank"),
])
def test_bad_settings_are_named_by_field(raw: dict[str, Any], problem: str) -> None:
    settings, problems = SfccDestination.parse_settings(raw)
    assert settings is None and problem in problems, problems


@pytest.mark.parametrize(("attributes", "problem"), [
    ({"plan": "plan"}, "plan: 'plan' is no writable Customer property; use one of "),
    ({"created": "creation_date"}, "created: creation_date is kept by Commerce Cloud itself"),
    ({"email": "email", "mail": "email"}, "email: more than one trait maps to it"),
])
def test_bad_attribute_mappings_are_refused_by_option(attributes: dict[str, str],
                                                      problem: str) -> None:
    problems = SfccDestination.options_problems({"attributes": attributes}, "mapping.options")
    assert len(problems) == 1 and problems[0].startswith(
        "mapping.options.attributes: " + problem), problems


def test_an_identify_patches_the_customer_by_number_with_the_mapped_properties() -> None:
    (only,) = planned(None, item(1, traits={
        "email": " ada@example.com ", "firstName": "Ada", "phone": "+33 6 12 34 56 78",
        "birthday": "7/4/1990", "gender": "F", "tier": "gold", "lifetime_value": 12.5,
        "ignored": "x", "lastName": None}))
    assert isinstance(only, PlannedRequest)
    request = only.request
    assert (request.method, str(request.url)) == (
        "PATCH", "https://zzxy-001.dx.commercecloud.salesforce.com/s/-/dw/data/v23_2/"
                 "customer_lists/RefArch/customers/u1")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "email": "ada@example.com", "first_name": "Ada", "phone_mobile": "+33 6 12 34 56 78",
        "birthday": "1990-07-04", "gender": 2, "c_loyaltyTier": "gold",
        "c_lifetimeValue": 12.5}


def test_the_customer_number_and_list_are_escaped_in_the_path() -> None:
    (only,) = plugin(customer_list="Site/A").build_requests([item(1, userId="a b/c")])
    assert isinstance(only, PlannedRequest)
    assert str(only.request.url).endswith("/customer_lists/Site%2FA/customers/a%20b%2Fc")


def test_values_commerce_cloud_cannot_take_are_left_out_and_named() -> None:
    result = planned({"attributes": {**OPTIONS["attributes"], "locale": "preferred_locale"}},
                     item(1, traits={"email": "a@example.com", "birthday": "30 February 1990",
                                     "gender": "other", "phone": "1" * 33,
                                     "locale": "en_US", "firstName": "x" * 257}))
    refused = dict((p.field, p.reason) for p in result if isinstance(p, FieldRefused))
    assert sorted(refused) == ["birthday", "first_name", "gender", "phone_mobile"]
    assert refused["birthday"].startswith("birthday: ")
    assert refused["first_name"] == ("first_name: longer than 256 characters (Commerce "
                                      "Cloud's limit)")
    assert refused["gender"] == ("gender: Commerce Cloud takes 1 (male) or 2 (female), or "
                                 "male/female")
    assert refused["phone_mobile"] == ("phone_mobile: longer than 32 characters (Commerce "
                                       "Cloud's limit)")
    (request,) = [p for p in result if isinstance(p, PlannedRequest)]
    assert json.loads(request.request.content) == {"email": "a@example.com",
                                                   "preferred_locale": "en-US"}


def test_without_a_customer_number_the_item_is_rejected() -> None:
    too_long = "n" * 101
    result = planned(None, item(1, userId=None), item(2, userId=too_long))
    assert sorted(p.reason for p in result if isinstance(p, Rejected)) == [
        "customer_no: longer than 100 characters (Commerce Cloud's limit)",
        "customer_no: none of userId holds a value (options.customer_no)"]


def _answer(status: int, body: Any) -> Any:
    (only,) = planned(None, item(1))
    assert isinstance(only, PlannedRequest)
    return plugin().classify(only, httpx.Response(status, json=body, request=only.request))


def _fault(kind: str, message: str) -> dict[str, Any]:
    return {"_v": "23.2", "fault": {"type": kind, "message": message}}


def test_faults_are_read_by_their_type() -> None:
    assert _answer(200, {"_type": "customer"}) == DELIVERED
    assert _answer(404, _fault("CustomerNotFoundException", "No customer 'u1'.")) == Failed(
        "HTTP 404: CustomerNotFoundException: No customer 'u1'.")
    assert _answer(400, _fault("InvalidCustomPropertyException", "Can't write")) == Failed(
        "HTTP 400: InvalidCustomPropertyException: Can't write")
    assert _answer(401, _fault("InvalidAccessTokenException", "invalid")) == Failed(
        "HTTP 401: InvalidAccessTokenException: invalid")
    assert _answer(429, _fault("QuotaExceededException", "slow")) == Retry(
        "HTTP 429: QuotaExceededException: slow")
    assert _answer(503, {"not": "a fault"}) == Retry('HTTP 503: {"not":"a fault"}')
