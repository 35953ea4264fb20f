"""The SFMC plugin's pure part: settings, the grant it declares, the requests it builds and how
it reads Marketing Cloud's answers (no I/O; the fake is in the other test modules)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sfmc_helpers import OPTIONS, item

from crossdock.destination import Failed, PlannedRequest, Rejected, Retry
from crossdock.loader import parse_config
from crossdock.plugins.sfmc import SfmcDestination, SfmcSettings

SETTINGS = {"subdomain": "mc563885gzs27c5t9-63k636ttgm", "client_id": "cid",
            "client_secret": "csecret"}


def plugin(options: dict[str, Any] | None = None, **more: Any) -> SfmcDestination:
    shipped = SfmcDestination.default_mapping()
    shipped["options"] = {**shipped["options"], **OPTIONS, **(options or {})}
    return SfmcDestination(SfmcSettings.model_validate({**SETTINGS, **more}), shipped)


def test_the_grant_is_client_credentials_as_json_at_the_tenants_auth_host() -> None:
    grant = plugin(account_id="514009999", scope="data_extensions_write").token_grant()
    request = grant.token_request(0.0)
    assert str(request.url) == ("https://mc563885gzs27c5t9-63k636ttgm.auth."
                                "marketingcloudapis.com/v2/token")
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret",
        "account_id": "514009999", "scope": "data_extensions_write"}
    assert grant.api_base_field == "rest_instance_url"
    assert grant.client_secret == SecretStr("csecret")


@pytest.mark.parametrize(("raw", "problem"), [
    ({"client_id": "c", "client_secret": "s"},
     "settings: give either subdomain or auth_base_uri (one of them)"),
    ({**SETTINGS, "auth_base_uri": "https://x.auth.marketingcloudapis.com"},
     "settings: give either subdomain or auth_base_uri (one of them)"),
    ({**SETTINGS, "subdomain": "mc.evil.com/x"}, "settings.subdomain: letters, digits and - "
     "only (the part before .auth.marketingcloudapis.com)"),
    ({**SETTINGS, "account_id": "MID-1"}, "settings.account_id: a MID is digits only"),
])
def test_bad_settings_are_named_by_field(raw: dict[str, Any], problem: str) -> None:
    settings, problems = SfmcDestination.parse_settings(raw)
    assert settings is None and problem in problems, problems


def test_identifies_are_upserted_as_rowsets_of_at_most_50_rows() -> None:
    items = [item(n, traits={"email": f"p{n}@example.com", "firstName": "P", "plan": None,
                             "lifetime_value": 7, "ignored": "x"}) for n in range(1, 121)]
    planned = plugin().build_requests(items)
    assert [len(p.items) for p in planned if isinstance(p, PlannedRequest)] == [50, 50, 20]
    first = planned[0]
    assert isinstance(first, PlannedRequest)
    request = first.request
    assert (request.method, str(request.url)) == (
        "POST", "/hub/v1/dataevents/key:Crossdock_Contacts/rowset")  # joined onto the REST host
    rows = json.loads(request.content)
    assert rows[0] == {"keys": {"ContactKey": "u1"},
                       "values": {"EmailAddress": "p1@example.com", "FirstName": "P",
                                  "LifetimeValue": 7}}


def test_rows_tried_before_go_one_per_rowset() -> None:
    items = [item(1), replace(item(2), attempts=2), item(3), item(4)]
    planned = plugin().build_requests(items)
    assert [[i.id for i in p.items] for p in planned if isinstance(p, PlannedRequest)] == [
        [1], [2], [3, 4]]


def test_values_of_objects_go_as_json_text_and_the_key_is_escaped() -> None:
    planned = plugin({"data_extension": "DE/with space", "columns": {"plan": "Plan"}}
                     ).build_requests([item(1, traits={"plan": {"tier": "pro"}})])
    (only,) = planned
    assert isinstance(only, PlannedRequest)
    assert str(only.request.url) == "/hub/v1/dataevents/key:DE%2Fwith%20space/rowset"
    assert json.loads(only.request.content)[0]["values"] == {"Plan": '{"tier":"pro"}'}


def test_events_are_journey_entry_events_of_their_mapped_key() -> None:
    planned = plugin({"default_journey": "Crossdock-Events"}).build_requests([
        item(1, "track", properties={"price": 42, "items": [1, 2], "note": None}),
        item(2, "track", event="Signed Up", properties={})])
    bodies = [json.loads(p.request.content) for p in planned if isinstance(p, PlannedRequest)]
    assert bodies == [
        {"ContactKey": "u1", "EventDefinitionKey": "Crossdock-Order-Completed",
         "Data": {"price": 42, "items": "[1,2]"}},
        {"ContactKey": "u2", "EventDefinitionKey": "Crossdock-Events", "Data": {}}]
    first = planned[0]
    assert isinstance(first, PlannedRequest)
    assert str(first.request.url) == "/interaction/v1/events"
    assert first.request.headers["content-type"] == "application/json; charset=UTF-8"


def test_what_cannot_be_sent_is_rejected_with_the_option_to_set() -> None:
    planned = plugin().build_requests([
        item(1, "track", event="Clicked"), item(2, userId=None)])
    reasons = sorted(p.reason for p in planned if isinstance(p, Rejected))
    assert reasons == [
        "ContactKey: none of userId holds a value (options.contact_key)",
        "event: no Journey Builder entry event for 'Clicked'; map it in options.journeys or "
        "set options.default_journey"]
    (no_extension,) = plugin({"data_extension": None}).build_requests([item(3)])
    assert isinstance(no_extension, Rejected)
    assert no_extension.reason.startswith("options.data_extension: no data extension")


def test_validate_warns_when_identifies_have_no_data_extension(tmp_path: Any) -> None:
    loaded = parse_config({"destinations": {"mc": {"plugin": "sfmc", "settings": SETTINGS}}},
                          base_dir=tmp_path, env={})
    assert any("mc.mapping.options.data_extension: not set" in w for w in loaded.warnings)


def test_an_event_definition_key_with_a_period_is_refused_by_option() -> None:
    problems = SfmcDestination.options_problems(
        {**OPTIONS, "journeys": {"Order Completed": "Order.Completed"}}, "mapping.options")
    assert problems == ["mapping.options.journeys: an EventDefinitionKey is not blank and "
                        "holds no period"]


def _answer(step_items: int, status: int, body: Any, step: str = "rowset") -> Any:
    planned = plugin().build_requests([item(n) for n in range(1, step_items + 1)])[0]
    assert isinstance(planned, PlannedRequest)
    planned.step = step
    response = httpx.Response(status, json=body, request=planned.request)
    return plugin().classify(planned, response)


def test_a_passing_lock_is_retried_and_a_refused_row_dead_letters_the_rowset() -> None:
    lock = {"message": "Unable to save rows for data extension ID 1", "errorcode": 10006}
    assert _answer(2, 400, lock) == Retry(
        "HTTP 400: Unable to save rows for data extension ID 1 (errorcode 10006)")
    refused = {**lock, "additionalErrors": [{"message": "row 1: bad Number", "errorcode": 1}]}
    assert _answer(2, 400, refused) == Retry(
        "HTTP 400: Unable to save rows for data extension ID 1 (errorcode 10006): row 1: bad "
        "Number; the 2 rows of the rowset are tried again one by one")
    assert _answer(1, 400, refused) == Failed(
        "HTTP 400: Unable to save rows for data extension ID 1 (errorcode 10006): row 1: bad "
        "Number")
    assert _answer(1, 401, {"message": "Not Authorized", "errorcode": 0}) == Failed(
        "HTTP 401: Not Authorized (errorcode 0)")
    assert _answer(1, 429, {"message": "slow"}) == Retry("HTTP 429: slow")
