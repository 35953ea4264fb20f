"""The MailUp plugin's pure part: settings, the grant it declares, the requests it builds and how
it reads MailUp's answers (no I/O; the fake is in the other test modules)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from mailup_helpers import OPTIONS, item

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    FollowUp,
    Password,
    PlannedRequest,
    RefreshToken,
    Rejected,
    Retry,
)
from crossdock.loader import parse_config
from crossdock.plugins.mailup import MailUpDestination, MailUpSettings

SETTINGS: dict[str, Any] = {"client_id": "cid", "client_secret": "csecret", "username": "m1234",
                            "password": "pw", "list_id": 3}
ROOT = "https://services.mailup.com/API/v1.1/Rest/ConsoleService.svc"


def plugin(options: dict[str, Any] | None = None, **more: Any) -> MailUpDestination:
    shipped = MailUpDestination.default_mapping()
    shipped["options"] = {**shipped["options"], **OPTIONS, **(options or {})}
    raw = {**SETTINGS, **more}
    for key in [k for k, v in raw.items() if v is None]:
        del raw[key]
    return MailUpDestination(MailUpSettings.model_validate(raw), shipped)


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def test_the_password_grant_is_a_form_with_the_client_in_it() -> None:
    grant = plugin().token_grant()
    assert isinstance(grant, Password)
    request = grant.token_request(0.0, refresh_token="an-old-refresh-token")
    assert str(request.url) == "https://services.mailup.com/Authorization/OAuth/Token"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in request.headers
    # The password every time, never a refresh token an earlier answer carried.
    assert form(request) == {"grant_type": "password", "username": "m1234", "password": "pw",
                             "client_id": "cid", "client_secret": "csecret"}
    assert sorted(grant.secrets()) == ["csecret", "pw"]


def test_the_refresh_token_grant_is_a_form_with_the_client_in_it() -> None:
    grant = plugin(username=None, password=None, refresh_token="rt-1").token_grant()
    assert isinstance(grant, RefreshToken)
    assert form(grant.token_request(0.0)) == {
        "grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "cid",
        "client_secret": "csecret"}
    # MailUp renews the refresh token at each use: the newest is sent.
    assert form(grant.token_request(0.0, "rt-2"))["refresh_token"] == "rt-2"


@pytest.mark.parametrize(("raw", "problem"), [
    ({k: v for k, v in SETTINGS.items() if k not in ("username", "password")},
     "settings: give either username and password (the password grant) or refresh_token "
     "(the refresh token grant), one of them"),
    ({**SETTINGS, "refresh_token": "rt"},
     "settings: give either username and password (the password grant) or refresh_token "
     "(the refresh token grant), one of them"),
    ({k: v for k, v in SETTINGS.items() if k != "password"},
     "settings: the password grant takes both username and password"),
    ({**SETTINGS, "list_id": 0}, "settings.list_id: Input should be greater than or equal to 1"),
    ({**SETTINGS, "base_url": "https://services.mailup.com/API/v1.1/Rest"},
     "settings.base_url: the console service URL ends in /ConsoleService.svc"),
    ({**SETTINGS, "username": " "}, "settings.username: must not be blank"),
])
def test_bad_settings_are_named_by_field(raw: dict[str, Any], problem: str) -> None:
    settings, problems = MailUpDestination.parse_settings(raw)
    assert settings is None and any(p.startswith(problem) for p in problems), problems


@pytest.mark.parametrize(("options", "problem"), [
    ({"fields": {"plan": 40}}, "a personal data field id is 1 to 39 (MailUp's), not 40"),
    ({"fields": {"plan": 0}}, "a personal data field id is 1 to 39 (MailUp's), not 0"),
    ({"fields": {"plan": 3, "company": 3}}, "two traits map to one field id"),
    ({"fields": {"plan": 12}, "user_id_field": 12},
     "user_id_field 12 is also a trait's field id"),
])
def test_bad_field_ids_are_refused_by_option(options: dict[str, Any], problem: str) -> None:
    problems = MailUpDestination.options_problems({**OPTIONS, **options}, "mapping.options")
    assert len(problems) == 1 and problem in problems[0], problems


def only(planned: list[Any]) -> PlannedRequest:
    requests = [p for p in planned if isinstance(p, PlannedRequest)]
    assert len(requests) == 1
    return requests[0]


def test_a_granted_consent_subscribes_the_recipient_with_its_fields() -> None:
    planned = plugin().build_item(item(1, traits={
        "email": " ada1@example.com ", "firstName": "Ada", "lastName": None, "plan": 3,
        "phone": "+39 347 123 4567", "name": "Ada L.", "ignored": "x"}))
    request = only(planned).request
    assert (request.method, str(request.url)) == (
        "POST", ROOT + "/Console/List/3/Recipient?ConfirmEmail=false")
    assert json.loads(request.content) == {
        "Name": "Ada L.", "Email": "ada1@example.com", "MobilePrefix": "+39",
        "MobileNumber": "3471234567",
        "Fields": [{"Id": 1, "Value": "Ada"}, {"Id": 13, "Value": "3"},
                   {"Id": 12, "Value": "u1"}]}
    assert only(planned).step == "subscribe"


def test_double_opt_in_and_a_group_are_in_the_url() -> None:
    request = only(plugin(confirm_email=True, group_id=10).build_item(item(1))).request
    assert str(request.url) == ROOT + "/Console/Group/10/Recipient?ConfirmEmail=true"
    assert json.loads(request.content)["Name"] == ""  # required by MailUp, unused


def test_a_consent_not_granted_looks_the_subscriber_up() -> None:
    for granted in (False, None):  # not granted, or no consent read: never subscribed
        planned = plugin().build_item(item(1, granted, traits={"email": "o'neil@example.com"}))
        request = only(planned).request
        assert request.method == "GET"
        assert request.url.path.endswith("/Console/List/3/Recipients/Subscribed")
        assert dict(request.url.params) == {
            "filterby": "\"Email.Contains('o''neil@example.com')\"", "pageSize": "100",
            "pageNumber": "0"}


def test_values_mailup_cannot_take_are_left_out_and_counted() -> None:
    planned = plugin().build_item(item(1, traits={
        "email": "ada1@example.com", "firstName": "A" * 201, "phone": "347 123 4567"}))
    refused = sorted((p.field, p.reason) for p in planned if isinstance(p, FieldRefused))
    assert refused == [
        ("Fields[1]", "left out: traits.firstName is longer than the 200 characters of a "
                      "MailUp personal data field"),
        ("MobileNumber", "left out: a national number (no + or 00 country prefix) and no "
                         "country to read it in: set mapping.options.phone_region")]
    body = json.loads(only(planned).request.content)
    assert "MobileNumber" not in body and body["Fields"] == [{"Id": 12, "Value": "u1"}]
    national = plugin({"phone_region": "IT"}).build_item(item(2, traits={
        "email": "b@example.com", "phone": "347 123 4567"}))
    assert json.loads(only(national).request.content)["MobileNumber"] == "3471234567"


def test_no_email_is_a_dead_letter_naming_the_option() -> None:
    with pytest.raises(Exception) as raised:
        plugin().build_item(item(1, traits={"phone": "+393471234567"}, identities={}))
    assert str(raised.value) == ("Email: MailUp keys the list's recipients by email; none of "
                                 "traits.email, identities.email holds one (options.email)")
    planned = plugin().build_requests([item(2, traits={})])
    assert [type(p) for p in planned] == [Rejected]


def test_the_email_is_read_by_the_documented_priority() -> None:
    both = item(1, traits={"email": "trait@example.com"},
                identities={"email": "identity@example.com"})
    assert json.loads(only(plugin().build_item(both)).request.content)["Email"] == (
        "trait@example.com")
    identity = item(2, traits={}, identities={"email": "identity@example.com"})
    assert json.loads(only(plugin().build_item(identity)).request.content)["Email"] == (
        "identity@example.com")


def _lookup(answer: Any, status: int = 200, email: str = "ada1@example.com") -> Any:
    planned = only(plugin().build_item(item(1, False, traits={"email": email})))
    response = httpx.Response(status, json=answer, request=planned.request)
    return plugin().classify(planned, response)


def test_the_lookup_unsubscribes_only_the_exact_address() -> None:
    page = {"IsPaginated": True, "PageNumber": 0, "PageSize": 100, "Skipped": 0,
            "TotalElementsCount": 2, "Items": [
                {"idRecipient": 7, "Email": "xada1@example.com"},
                {"idRecipient": 9, "Email": "ADA1@example.com"}]}
    follow = _lookup(page)
    assert isinstance(follow, FollowUp) and follow.step == "unsubscribe"
    assert (follow.request.method, str(follow.request.url)) == (
        "DELETE", ROOT + "/Console/List/3/Unsubscribe/9")
    assert _lookup({**page, "Items": page["Items"][:1], "TotalElementsCount": 1}) == DELIVERED
    more = _lookup({**page, "Items": page["Items"][:1], "TotalElementsCount": 150})
    assert isinstance(more, Failed) and "150 subscribers" in more.reason
    assert isinstance(_lookup([1, 2]), Retry)  # not MailUp's paginated answer


def test_mailups_error_body_is_the_reason() -> None:
    planned = only(plugin().build_item(item(1)))
    body = {"ErrorCode": "400", "ErrorDescription": "Invalid email address",
            "ErrorName": "BadRequest", "ErrorStack": None}
    answer = plugin().classify(planned, httpx.Response(400, json=body,
                                                       request=planned.request))
    assert answer == Failed("HTTP 400: BadRequest: Invalid email address")
    throttled = plugin().classify(planned, httpx.Response(
        429, json={**body, "ErrorCode": "429", "ErrorName": "TooManyRequests",
                   "ErrorDescription": "slow"}, request=planned.request))
    assert throttled == Retry("HTTP 429: TooManyRequests: slow")


def test_validate_warns_when_the_mapping_reads_no_email_consent(tmp_path: Any) -> None:
    loaded = parse_config({"destinations": {"mu": {
        "plugin": "mailup", "settings": SETTINGS, "mapping": {"consent": []}}}},
        base_dir=tmp_path, env={})
    assert any("mu.mapping.consent: the email consent is not read" in w
               for w in loaded.warnings)
    shipped = parse_config({"destinations": {"mu": {"plugin": "mailup",
                                                    "settings": SETTINGS}}},
                           base_dir=tmp_path, env={})
    assert not any("consent" in w for w in shipped.warnings)
