"""facebook_audience: settings, build_requests (rows, methods, sessions) and classify, pure."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from facebook_helpers import ATTEMPT_TIME, destination, item
from pydantic import ValidationError

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    Planned,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.plugins.facebook_audience import FacebookAudienceSettings
from crossdock.plugins.facebook_audience.destination import classify_response, session_id
from crossdock.plugins.facebook_audience.normalize import Context, prepare


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def body(planned: Planned) -> dict[str, Any]:
    assert isinstance(planned, PlannedRequest)
    data: dict[str, Any] = json.loads(planned.request.content)
    return data


def test_settings_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        FacebookAudienceSettings.model_validate(
            {"audience_id": "abc", "access_token": "t", "api_version": "21",
             "schema": ["EMAIL", "SSN"]})
    text = str(info.value)
    assert "audience_id" in text and "numeric id" in text
    assert "api_version" in text and "must look like v26.0" in text
    assert "unknown field(s) SSN" in text


def test_a_person_becomes_one_hashed_row() -> None:
    dest = destination(schema=["EMAIL", "PHONE", "FN", "LN", "MADID"])
    payload_item = item(7, traits={"email": " Ann@Example.com", "phone": "+1 650-555-0007",
                                   "firstName": "Ann", "lastName": "O'Neil",
                                   "advertisingId": "AB-CD"})
    (planned,) = dest.build_requests([payload_item])
    assert isinstance(planned, PlannedRequest)
    assert planned.request.method == "POST"
    assert planned.request.url.path == "/v26.0/6000000000001/users"
    assert planned.request.url.params["access_token"] == "EAAB-fake-token"
    assert "appsecret_proof" not in planned.request.url.params
    sent = body(planned)
    assert sent["payload"] == {
        "schema": ["EMAIL", "PHONE", "FN", "LN", "MADID"],
        "data": [[sha("ann@example.com"), sha("16505550007"), sha("ann"), sha("oneil"),
                  "ab-cd"]]}
    assert planned.items == [payload_item]


def test_rendered_templates_and_identities_feed_fields() -> None:
    dest = destination(schema=["EMAIL", "DOBY", "DOBM", "DOBD", "EXTERN_ID"])
    one = item(1, traits={"birthDate": "1990-07-04"}, identities={"email": "id@example.com"},
               rendered={"EXTERN_ID": "crm-1"})
    (planned,) = dest.build_requests([one])
    assert body(planned)["payload"]["data"] == [
        [sha("id@example.com"), sha("1990"), sha("07"), sha("04"), "crm-1"]]


@pytest.mark.parametrize(("birth_date", "order", "expected"), [
    ("1990-05-17T00:00:00+0200", "month_first", ("1990", "05", "17")),  # the user API's form
    ("2/16/1997", "month_first", ("1997", "02", "16")),  # Meta's example; we sent nothing
    ("16-2-1997", "month_first", ("1997", "02", "16")),
    ("3.2.1997", "day_first", ("1997", "02", "03")),
    ("February 16, 1997", "month_first", ("1997", "02", "16")),
])
def test_dates_of_birth_in_the_forms_people_send(birth_date: str, order: str,
                                                 expected: tuple[str, str, str]) -> None:
    dest = destination(schema=["EMAIL", "DOBY", "DOBM", "DOBD"], date_order=order)
    (planned,) = dest.build_requests(
        [item(1, traits={"email": "a@example.com", "birthDate": birth_date})])
    assert body(planned)["payload"]["data"][0][1:] == [sha(part) for part in expected]


def test_a_date_of_birth_that_is_no_date_leaves_its_fields_out_and_says_why() -> None:
    dest = destination(schema=["EMAIL", "DOBY", "DOBM"])
    one = item(1, traits={"email": "a@example.com", "birthDate": "2/16/97"})
    refused_doby, refused_dobm, planned = dest.build_requests([one])
    assert body(planned)["payload"]["data"] == [[sha("a@example.com"), "", ""]]
    assert refused_doby == FieldRefused(
        one, "DOBY", "date of birth: the year must have four digits, first or last")
    assert isinstance(refused_dobm, FieldRefused) and refused_dobm.field == "DOBM"


def test_a_birth_month_by_name() -> None:
    dest = destination(schema=["EMAIL", "DOBM"])
    (planned,) = dest.build_requests(
        [item(1, traits={"email": "a@example.com", "birthMonth": "Jan"})])
    assert body(planned)["payload"]["data"] == [[sha("a@example.com"), sha("01")]]


def test_a_national_phone_number_is_read_in_the_default_region() -> None:
    dest = destination(schema=["EMAIL", "PHONE"], default_phone_region="IT")
    (planned,) = dest.build_requests(
        [item(1, traits={"email": "a@example.com", "phone": "06 1234 5678"})])
    # The 0 belongs to the Italian number; we used to send 39612345678.
    assert body(planned)["payload"]["data"] == [[sha("a@example.com"), sha("390612345678")]]


def test_the_persons_country_says_where_their_national_number_is_from() -> None:
    dest = destination(schema=["EMAIL", "PHONE"], default_phone_region="US")
    (planned,) = dest.build_requests(
        [item(1, traits={"email": "a@example.com", "phone": "06 1234 5678", "country": "Italy"})])
    assert body(planned)["payload"]["data"][0][1] == sha("390612345678")


def test_a_national_phone_number_without_a_region_is_left_out_and_reported() -> None:
    dest = destination(schema=["EMAIL", "PHONE"])
    one = item(1, traits={"email": "a@example.com", "phone": "06 1234 5678"})
    refused, planned = dest.build_requests([one])
    assert refused == FieldRefused(
        one, "PHONE", "a national number (no + or 00 country prefix) and no country to read "
                      "it in: set settings.default_phone_region or the person's country")
    assert body(planned)["payload"]["data"] == [[sha("a@example.com"), ""]]
    assert isinstance(planned, PlannedRequest) and planned.items == [one]


def test_a_person_with_nothing_usable_is_rejected_with_every_reason() -> None:
    dest = destination(schema=["PHONE"])
    (rejected,) = dest.build_requests([item(1, traits={"phone": "06 1234 5678"})])
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("no usable value for any schema field (PHONE)")
    assert "(PHONE: a national number" in rejected.reason


def test_names_and_cities_keep_their_digits() -> None:
    dest = destination(schema=["FN", "LN", "CT", "ST"])
    (planned,) = dest.build_requests([item(1, traits={
        "firstName": "John2", "lastName": "Smith 3rd", "city": "District9",
        "state": "New York"})])
    assert body(planned)["payload"]["data"] == [
        [sha("john2"), sha("smith3rd"), sha("district9"), sha("ny")]]


def test_the_graph_api_version_is_a_setting_defaulting_to_the_current_one() -> None:
    assert FacebookAudienceSettings.model_validate(
        {"audience_id": "1", "access_token": "t"}).api_version == "v26.0"
    (planned,) = destination(api_version="v25.0").build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    assert planned.request.url.path == "/v25.0/6000000000001/users"


def test_the_phone_region_setting_is_checked_and_the_old_one_explained() -> None:
    with pytest.raises(ValidationError, match=r"region code .* such as US, GB or IT"):
        FacebookAudienceSettings.model_validate(
            {"audience_id": "1", "access_token": "t", "default_phone_region": "Italy"})
    assert FacebookAudienceSettings.model_validate(
        {"audience_id": "1", "access_token": "t", "default_phone_region": "it"}
    ).default_phone_region == "IT"
    with pytest.raises(ValidationError, match="replaced by default_phone_region"):
        FacebookAudienceSettings.model_validate(
            {"audience_id": "1", "access_token": "t", "default_phone_country_code": "39"})


def test_appsecret_proof_is_time_bound_to_the_attempt() -> None:
    # Meta's Login Security guide: hash_hmac('sha256', $access_token.'|'.time(), $app_secret),
    # sent with appsecret_time; Meta considers it expired after 5 minutes.
    dest = destination(app_secret="s3cret")
    (planned,) = dest.build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    params = planned.request.url.params
    expected = hmac.new(b"s3cret", f"EAAB-fake-token|{ATTEMPT_TIME}".encode(),
                        hashlib.sha256).hexdigest()
    assert (params["appsecret_proof"], params["appsecret_time"]) == (expected, str(ATTEMPT_TIME))
    # A retry a day later signs the later attempt; the body is the batch sent before.
    (retry,) = dest.build_requests([item(1, attempted_at=ATTEMPT_TIME + 86_400.7)])
    assert isinstance(retry, PlannedRequest)
    assert retry.request.url.params["appsecret_time"] == str(ATTEMPT_TIME + 86_400)
    assert retry.request.content == planned.request.content


def test_without_an_app_secret_only_the_token_is_sent() -> None:
    (planned,) = destination().build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    assert set(planned.request.url.params) == {"access_token"}


def test_prepare_is_what_a_row_holds() -> None:
    # The one function the demo test and the docs use gives the row's values.
    assert prepare("PHONE", "06 1234 5678", Context(phone_region="IT")) == sha("390612345678")


def test_adds_and_removes_are_separate_requests_and_sessions() -> None:
    dest = destination()
    items = [item(1), item(2, "audience_exited"), item(3), item(4, "audience_exited")]
    planned = dest.build_requests(items)
    assert [p.request.method for p in planned if isinstance(p, PlannedRequest)] == \
        ["POST", "DELETE"]
    adds, removes = (body(p) for p in planned)
    assert [[i.id for i in p.items] for p in planned if isinstance(p, PlannedRequest)] == \
        [[1, 3], [2, 4]]
    assert adds["session"]["session_id"] != removes["session"]["session_id"]
    for sent in (adds, removes):
        assert sent["session"]["batch_seq"] == 1
        assert sent["session"]["last_batch_flag"] is True
        assert sent["session"]["estimated_num_total"] == 2


def test_the_last_change_of_a_person_wins() -> None:
    dest = destination()
    entered, exited, again = item(1), item(2, "audience_exited"), item(3)
    # The same person (profileId) enters, leaves and enters again in one batch.
    for i in (exited, again):
        i.payload["profileId"] = "p-1"
        i.payload["traits"] = entered.payload["traits"]
    (planned,) = dest.build_requests([entered, exited, again])
    assert isinstance(planned, PlannedRequest)
    assert planned.request.method == "POST"
    assert len(body(planned)["payload"]["data"]) == 1
    assert [i.id for i in planned.items] == [1, 2, 3]


def test_bad_items_are_rejected_with_reasons() -> None:
    dest = destination()
    wrong = item(1, event="Order Completed")
    empty = item(2, traits={"email": "nope", "phone": ""})
    good = item(3)
    planned = dest.build_requests([wrong, empty, good])
    reasons = {p.item.id: p.reason for p in planned if isinstance(p, Rejected)}
    assert "only track events audience_entered / audience_exited" in reasons[1]
    assert "'Order Completed'" in reasons[1]
    assert "no usable value for any schema field (EMAIL, PHONE, FN, LN)" in reasons[2]
    assert [p.items for p in planned if isinstance(p, PlannedRequest)] == [[good]]


def test_no_usable_value_names_the_schema() -> None:
    dest = destination(schema=["EMAIL", "PHONE"])
    (rejected,) = dest.build_requests([item(1, traits={"email": "nope"})])
    assert isinstance(rejected, Rejected)
    assert "no usable value for any schema field (EMAIL, PHONE)" in rejected.reason


def test_25000_adds_in_one_call_are_three_batches_of_one_session() -> None:
    dest = destination(schema=["EMAIL"])
    items = [item(n, traits={"email": f"p{n}@example.com"}) for n in range(1, 25_001)]
    planned = dest.build_requests(items)
    assert len(planned) == 3
    sessions = [body(p)["session"] for p in planned]
    assert len({s["session_id"] for s in sessions}) == 1
    assert [s["batch_seq"] for s in sessions] == [1, 2, 3]
    assert [s["last_batch_flag"] for s in sessions] == [False, False, True]
    assert {s["estimated_num_total"] for s in sessions} == {25_000}
    assert [len(body(p)["payload"]["data"]) for p in planned] == [10_000, 10_000, 5_000]
    carried = [i.id for p in planned if isinstance(p, PlannedRequest) for i in p.items]
    assert carried == list(range(1, 25_001))


def test_session_ids_are_stable_for_the_same_items_and_differ_otherwise() -> None:
    dest = destination()
    first = body(dest.build_requests([item(1), item(2)])[0])["session"]["session_id"]
    retried = body(dest.build_requests([item(1), item(2)])[0])["session"]["session_id"]
    other = body(dest.build_requests([item(1), item(3)])[0])["session"]["session_id"]
    assert first == retried != other
    assert 0 < first < 2**63
    assert first == session_id("6000000000001", "POST", [item(1), item(2)])


def test_the_engine_caps_a_batch_at_10000() -> None:
    raw = {"destinations": {"fb": {"plugin": "facebook_audience",
                                   "settings": {"audience_id": "1", "access_token": "t"},
                                   "delivery": {"batch_size": 25_000}}}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base_dir=Path("."))
    assert "destinations.fb.delivery.batch_size: at most 10000 for plugin facebook_audience" \
        in str(info.value)
    raw["destinations"]["fb"]["delivery"] = {}
    loaded = parse_config(raw, base_dir=Path("."))
    assert loaded.destinations[0].batch_size == 10_000


def graph(status: int, code: int | None = None, headers: dict[str, str] | None = None,
          **error: Any) -> httpx.Response:
    if code is None:
        return httpx.Response(status, text="<html>oops</html>", headers=headers)
    return httpx.Response(status, json={"error": {"message": "m", "type": "OAuthException",
                                                  "code": code, **error}}, headers=headers)


@pytest.mark.parametrize(("response", "expected"), [
    (httpx.Response(200, json={"num_received": 2}), DELIVERED),
    (graph(400, 4), Retry("facebook throttled (4): m", None)),
    (graph(400, 17, {"Retry-After": "30"}), Retry("facebook throttled (17): m", 30.0)),
    (graph(400, 613), Retry("facebook throttled (613): m", None)),
    (graph(400, 80003, error_subcode=2446079),
     Retry("facebook throttled (80003/2446079): m", None)),
    (graph(500, 1), Retry("facebook error 1 (HTTP 500): m", None)),
    (graph(500, 2), Retry("facebook error 2 (HTTP 500): m", None)),
    (graph(400, 100, fbtrace_id="Ab1"), Failed("facebook error 100 (HTTP 400): m, fbtrace_id "
                                               "Ab1")),
    (graph(400, 105), Failed("facebook error 105 (HTTP 400): m")),
    (graph(403, 200), Failed("facebook error 200 (HTTP 403): m")),
    (graph(400, 294), Failed("facebook error 294 (HTTP 400): m")),
    (graph(400, 2650), Failed("facebook error 2650 (HTTP 400): m")),
    (graph(400, 1487301), Failed("facebook error 1487301 (HTTP 400): m")),
    (graph(400, 1487366), Failed("facebook error 1487366 (HTTP 400): m")),
    (graph(400, 190, error_subcode=463), Failed("access token invalid (190): m")),
    (graph(400, 9999, is_transient=True), Retry("facebook error 9999 (HTTP 400): m", None)),
    (graph(503, 9999), Retry("facebook error 9999 (HTTP 503): m", None)),
    (graph(400, 9999), Failed("facebook error 9999 (HTTP 400): m")),
    (graph(502), Retry("facebook HTTP 502: <html>oops</html>", None)),
    (graph(404), Failed("facebook HTTP 404: <html>oops</html>")),
])
def test_classify(response: httpx.Response, expected: object) -> None:
    assert classify_response(response) == expected
