"""The Amplitude contract fake over real HTTP: it refuses what Amplitude refuses (each rule's
source is on docs/destinations/amplitude.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from amplitude_helpers import API_KEY

from crossdock.plugins.amplitude.fake import AmplitudeFake, revenue_of
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, fake_process

EVENT = {"event_type": "Signed Up", "user_id": "user-0001", "insert_id": "i-1",
         "time": 1714564800000}


def upload(server: RunningServer, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + "/2/httpapi", content=content,
                      headers={"content-type": "application/json"}, timeout=10)


def identify(server: RunningServer, identification: Any, key: str = API_KEY
             ) -> httpx.Response:
    form = {"api_key": key, "identification": json.dumps(identification)}
    return httpx.post(server.url + "/identify", content=urlencode(form),
                      headers={"content-type": "application/x-www-form-urlencoded"},
                      timeout=10)


def test_events_are_ingested_with_amplitude_s_answer(server: RunningServer,
                                                     fake: AmplitudeFake) -> None:
    answer = upload(server, {"api_key": API_KEY, "events": [
        EVENT, {**EVENT, "insert_id": "i-2", "user_properties": {"$set": {"plan": "pro"}}}]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["code"] == 200 and body["events_ingested"] == 2
    assert body["payload_size_bytes"] > 0 and isinstance(body["server_upload_time"], int)
    assert fake.users == {"user-0001": {"plan": "pro"}}


@pytest.mark.parametrize(("fields", "counted"), [
    ({}, None),
    ({"revenue": 25.0}, 25.0),
    # A price makes any event a revenue event, quantity 1 when absent ...
    ({"price": 30.0}, 30.0),
    ({"price": 30.0, "quantity": 2}, 60.0),
    # ... and price x quantity wins over the revenue sent with them.
    ({"revenue": 25.0, "price": 30.0, "quantity": 2}, 60.0),
])
def test_revenue_is_counted_as_amplitude_counts_it(fields: dict[str, Any],
                                                    counted: float | None) -> None:
    assert revenue_of({**EVENT, **fields}) == counted


def test_an_insert_id_seen_in_the_past_7_days_is_dropped(
        server: RunningServer, fake: AmplitudeFake, clock: ManualClock) -> None:
    for _ in range(2):
        assert upload(server, {"api_key": API_KEY, "events": [EVENT]}).json()[
            "events_ingested"] in (0, 1)
    assert len(fake.events) == 1 and fake.deduplicated == 1
    clock.advance(7 * 24 * 3600)
    assert upload(server, {"api_key": API_KEY, "events": [EVENT]}).json()[
        "events_ingested"] == 1


@pytest.mark.parametrize(("body", "status", "expected"), [
    ({"events": [EVENT]}, 400, {"missing_field": "api_key"}),
    ({"api_key": "other", "events": [EVENT]}, 400, {"error": "Invalid API key"}),
    ({"api_key": API_KEY}, 400, {"missing_field": "events"}),
    (b"{not json", 400, {"error": "Invalid JSON request body"}),
    ({"api_key": API_KEY, "events": [EVENT], "options": {"min_id_length": "5"}}, 400,
     {"error": "Invalid options: min_id_length"}),
    ({"api_key": API_KEY, "events": [{"user_id": "user-0001"}]}, 400,
     {"events_with_missing_fields": {"event_type": [0]}}),
    ({"api_key": API_KEY, "events": [{"event_type": "x"}]}, 400,
     {"events_with_missing_fields": {"user_id": [0]}}),
    ({"api_key": API_KEY, "events": [EVENT, {**EVENT, "user_id": "u1"}]}, 400,
     {"events_with_invalid_fields": {"user_id": [1]}}),
    ({"api_key": API_KEY, "events": [{**EVENT, "user_id": None,
                                      "device_id": "00000000-0000"}]}, 400,
     {"events_with_invalid_fields": {"device_id": [0]}}),
    ({"api_key": API_KEY, "events": [{**EVENT, "time": "2024-05-01"}]}, 400,
     {"events_with_invalid_fields": {"time": [0]}}),
    ({"api_key": API_KEY, "events": [{**EVENT, "session_id": 1.5}]}, 400,
     {"events_with_invalid_fields": {"session_id": [0]}}),
    ({"api_key": API_KEY, "events": [{**EVENT, "revenue": "9"}]}, 400,
     {"events_with_invalid_fields": {"revenue": [0]}}),
    ({"api_key": API_KEY, "events": [{**EVENT, "user_properties": {"$add": {"n": "1"}}}]},
     400, {"events_with_invalid_fields": {"user_properties": [0]}}),
    ({"api_key": API_KEY, "events": [{**EVENT, "user_properties": {"$put": {"n": 1}}}]},
     400, {"events_with_invalid_fields": {"user_properties": [0]}}),
    ({"api_key": API_KEY, "events": [{**EVENT, "user_properties": {
        "$set": {"n": 1}, "$unset": {"n": "-"}}}]},
     400, {"events_with_invalid_fields": {"user_properties": [0]}}),
])
def test_refusals(server: RunningServer, fake: AmplitudeFake, body: Any, status: int,
                  expected: dict[str, Any]) -> None:
    answer = upload(server, body)
    assert answer.status_code == status
    got = answer.json()
    assert got["code"] == status
    for key, value in expected.items():
        assert got[key] == value
    assert fake.events == []  # a refused request ingests nothing


def test_a_shorter_id_passes_with_the_request_s_min_id_length(
        server: RunningServer, fake: AmplitudeFake) -> None:
    answer = upload(server, {"api_key": API_KEY, "events": [{**EVENT, "user_id": "u1"}],
                             "options": {"min_id_length": 2}})
    assert answer.status_code == 200 and fake.events[0]["user_id"] == "u1"


def test_too_many_events_or_bytes_is_413(server: RunningServer, fake: AmplitudeFake) -> None:
    events = [{**EVENT, "insert_id": f"i-{n}"} for n in range(2001)]
    assert upload(server, {"api_key": API_KEY, "events": events}).status_code == 413
    big = {"api_key": API_KEY, "events": [{**EVENT, "event_properties": {
        "text": "x" * 1_000_000}}]}
    answer = upload(server, big)
    assert answer.status_code == 413 and answer.json() == {"code": 413,
                                                           "error": "Payload too large"}
    assert fake.events == []


def test_more_than_30_events_a_second_for_a_user_or_device_is_429(
        server: RunningServer, fake: AmplitudeFake, clock: ManualClock) -> None:
    busy = [{**EVENT, "insert_id": f"b-{n}"} for n in range(31)]
    device = {"event_type": "x", "device_id": "device-9", "insert_id": "d-1"}
    answer = upload(server, {"api_key": API_KEY, "events": [*busy, device]})
    assert answer.status_code == 429
    assert answer.json() == {
        "code": 429, "error": "Too many requests for some devices and users",
        "eps_threshold": 30, "throttled_users": {"user-0001": 31}, "throttled_devices": {},
        "throttled_events": list(range(31))}
    assert fake.events == []
    assert upload(server, {"api_key": API_KEY, "events": busy[:30]}).status_code == 200
    assert upload(server, {"api_key": API_KEY, "events": [device]}).status_code == 200
    refused = upload(server, {"api_key": API_KEY, "events": [busy[30]]})
    assert refused.status_code == 429
    clock.advance(1.0)  # the next second
    assert upload(server, {"api_key": API_KEY, "events": [busy[30]]}).status_code == 200


def test_events_of_a_silenced_device_are_refused(server: RunningServer,
                                                 fake: AmplitudeFake) -> None:
    fake.silenced_devices = {"device-9"}
    answer = upload(server, {"api_key": API_KEY, "events": [
        EVENT, {"event_type": "x", "device_id": "device-9"}]})
    assert answer.status_code == 400 and answer.json()["silenced_events"] == [1]


def test_identify_applies_user_property_operations(server: RunningServer,
                                                   fake: AmplitudeFake) -> None:
    assert identify(server, {"user_id": "user-0001", "user_properties": {
        "$set": {"plan": "pro"}, "$setOnce": {"ref": "a"}, "$add": {"n": 2},
        "$append": {"tags": "x"}}}).text == "success"
    assert identify(server, [{"user_id": "user-0001", "user_properties": {
        "$setOnce": {"ref": "b"}, "$add": {"n": 3}, "$unset": {"plan": "-"},
        "$prepend": {"tags": "w"}}}, {"device_id": "device-77", "user_properties": {
            "color": "red"}}]).status_code == 200
    assert fake.users == {"user-0001": {"ref": "a", "n": 5, "tags": ["w", "x"]},
                          "device:device-77": {"color": "red"}}


@pytest.mark.parametrize(("identification", "key", "problem"), [
    ({"user_id": "user-0001"}, "", "missing_field"),
    ({"user_id": "user-0001"}, "other", "Invalid API key"),
    ({"user_id": "u1"}, API_KEY, "at least 5 characters"),
    ({"user_properties": {"$set": {"a": 1}}}, API_KEY, "at least 5 characters"),
    ({"user_id": "user-0001", "user_properties": {"$add": {"a": "x"}}}, API_KEY,
     "Invalid user_properties"),
])
def test_identify_refusals(server: RunningServer, fake: AmplitudeFake, identification: Any,
                           key: str, problem: str) -> None:
    answer = identify(server, identification, key)
    assert answer.status_code == 400 and problem in answer.text
    assert fake.users == {}


def test_scripted_replies_answer_first(server: RunningServer, fake: AmplitudeFake) -> None:
    fake.script([503])
    assert upload(server, {"api_key": API_KEY, "events": [EVENT]}).status_code == 503
    assert upload(server, {"api_key": API_KEY, "events": [EVENT]}).status_code == 200
    assert fake.statuses() == [503, 200]


def test_the_fake_runs_on_its_own() -> None:
    with fake_process("crossdock.plugins.amplitude.fake", "--api-key", "k") as proc:
        assert "Amplitude fake on" in proc.banner
        answer = httpx.post(proc.url + "/2/httpapi", json={"api_key": "k", "events": [EVENT]})
        assert answer.status_code == 200
