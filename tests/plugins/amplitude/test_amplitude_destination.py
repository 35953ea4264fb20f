"""The Amplitude plugin against its contract fake: what each message becomes, the id and size
rules, and how Amplitude's refusals of some events are read (each rule's source is on
docs/destinations/amplitude.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from amplitude_helpers import API_KEY, destination, events_of, identifications_of, item
from pydantic import ValidationError

from crossdock.destination import (
    DELIVERED,
    MAX_FOLLOW_UPS,
    Failed,
    FieldRefused,
    FollowUp,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.amplitude import AmplitudeDestination, AmplitudeSettings
from crossdock.plugins.amplitude.const import MAX_BYTES, MAX_EVENTS
from crossdock.plugins.amplitude.fake import AmplitudeFake, revenue_of
from crossdock.testing.exchange import Exchange, exchange, outcomes
from crossdock.testing.fakeserver import RunningServer


def requests(dest: AmplitudeDestination, *items: Any) -> list[PlannedRequest]:
    return [p for p in dest.build_requests(list(items)) if isinstance(p, PlannedRequest)]


def test_an_event_is_sent_with_its_ids_time_insert_id_and_context(
        server: RunningServer, fake: AmplitudeFake) -> None:
    one = item(1, properties={"revenue": 19.5, "price": 9.75, "quantity": 2.0,
                              "product_id": "sku-1", "coupon": "X"},
               context={"ip": "203.0.113.9", "locale": "it-IT", "app": {"version": "2.1"},
                        "os": {"name": "iOS", "version": "17.4"},
                        "device": {"id": "device-abc", "model": "iPhone15,2",
                                   "manufacturer": "Apple", "type": "ios"},
                        "location": {"country": "Italy", "city": "Rome"}})
    assert outcomes(destination(server), [one]) == [DELIVERED]
    (event,) = fake.events
    assert event == {
        "event_type": "Order Completed", "user_id": "user-0001",
        # The SDK's device id comes before the anonymousId.
        "device_id": "device-abc", "insert_id": "msg-1", "time": 1714564800250,
        "event_properties": {"revenue": 19.5, "price": 9.75, "quantity": 2.0,
                             "product_id": "sku-1", "coupon": "X"},
        "app_version": "2.1", "platform": "ios", "os_name": "iOS", "os_version": "17.4",
        "device_manufacturer": "Apple", "device_model": "iPhone15,2", "country": "Italy",
        "city": "Rome", "language": "it-IT", "ip": "203.0.113.9",
        "revenue": 19.5, "price": 9.75, "quantity": 2, "productId": "sku-1"}
    request = fake.received[0]
    assert request["path"] == "/2/httpapi"
    assert request["headers"]["content-type"] == "application/json"
    assert request["body"]["api_key"] == API_KEY
    # Amplitude's default id length: no options sent.
    assert "options" not in request["body"]


def test_only_an_event_with_revenue_is_a_revenue_event(server: RunningServer,
                                                      fake: AmplitudeFake) -> None:
    # Amplitude counts price x quantity for any event with a price: a Product Added must not
    # count as $60 of revenue (Segment and RudderStack send revenue fields only with revenue).
    added = item(1, event="Product Added", properties={"price": 30, "quantity": 2})
    assert outcomes(destination(server), [added]) == [DELIVERED]
    (event,) = fake.events
    assert revenue_of(event) is None
    assert event["event_properties"] == {"price": 30, "quantity": 2}
    assert not {"price", "quantity", "revenue", "productId"} & set(event)


def test_price_and_quantity_that_disagree_with_the_revenue_are_left_out(
        server: RunningServer, fake: AmplitudeFake) -> None:
    # The order's revenue is 25 (after a discount); 30 x 2 would replace it.
    order = item(1, properties={"revenue": 25, "price": 30, "quantity": 2})
    built = destination(server).build_requests([order])
    assert FieldRefused(order, "price", "left out: price x quantity (60) is not the revenue "
                                        "(25), and Amplitude would count price x quantity"
                        ) in built
    assert outcomes(destination(server), [order]) == [DELIVERED]
    (event,) = fake.events
    assert revenue_of(event) == 25
    assert (event["revenue"], "price" in event, "quantity" in event) == (25, False, False)


def test_session_id_is_the_session_start_in_milliseconds(server: RunningServer) -> None:
    (planned,) = requests(destination(server),
                          item(1, sessionId="s1", sessionStart="2024-05-01T11:59:00.123Z"),
                          item(2, sessionId=None))
    first, second = events_of(planned)
    assert first["session_id"] == 1714564740123
    assert "session_id" not in second  # no session known: Amplitude's "no session"


def test_pages_and_screens_are_events_named_as_routed(server: RunningServer,
                                                      fake: AmplitudeFake) -> None:
    dest = destination(server)
    assert outcomes(dest, [item(1, "page", properties={"path": "/"}),
                           item(2, "screen", event="Checkout")]) == [DELIVERED] * 2
    assert [(e["event_type"], e.get("event_properties")) for e in fake.events] == [
        ("Home", {"path": "/"}), ("Checkout", None)]


def test_an_identify_sets_user_properties_through_the_identify_api(
        server: RunningServer, fake: AmplitudeFake) -> None:
    dest = destination(server, options={"user_properties": {
        "set_once": ["initial_referrer"], "unset": ["legacy_plan"], "add": {}}})
    first = item(1, "identify", traits={"plan": "pro", "initial_referrer": "news",
                                        "nickname": None})
    (planned,) = requests(dest, first)
    assert planned.request.url.path == "/identify"
    assert planned.request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert identifications_of(planned.request) == [{
        "user_id": "user-0001", "device_id": "dev-0001",
        "user_properties": {"$unset": {"legacy_plan": "-", "nickname": "-"},
                            "$set": {"plan": "pro"},
                            "$setOnce": {"initial_referrer": "news"}}}]
    fake.users["user-0001"] = {"legacy_plan": "gold", "nickname": "Ada"}
    assert outcomes(dest, [first]) == [DELIVERED]
    again = item(2, "identify", userId="user-0001",
                 traits={"plan": "max", "initial_referrer": "ads"})
    assert outcomes(dest, [again]) == [DELIVERED]
    # $setOnce keeps the first referrer; $set changes the plan; $unset removed the others.
    assert fake.users["user-0001"] == {"plan": "max", "initial_referrer": "news"}
    assert fake.received[-1]["body"].startswith("api_key=amplitude-key-1&identification=")


def test_add_sends_increments_on_the_messages_that_carry_them(
        server: RunningServer, fake: AmplitudeFake) -> None:
    dest = destination(server, options={"user_properties": {
        "add": {"lifetime_revenue": "properties.revenue"}, "set_once": [], "unset": []}})
    one, two = item(1, properties={"revenue": 10}), item(2, userId="user-0001",
                                                         properties={"revenue": 2.5})
    assert outcomes(dest, [one]) == outcomes(dest, [two]) == [DELIVERED]
    assert fake.users["user-0001"] == {"lifetime_revenue": 12.5}
    assert fake.events[0]["user_properties"] == {"$add": {"lifetime_revenue": 10}}
    text = item(3, properties={"revenue": "lots"})
    refused, planned = dest.build_requests([text])
    assert refused == FieldRefused(text, "user_properties.$add.lifetime_revenue",
                                   "left out: properties.revenue is not a number ($add "
                                   "increments)")
    assert isinstance(planned, PlannedRequest)
    assert "user_properties" not in events_of(planned)[0]


def test_an_id_shorter_than_the_minimum_is_left_out(server: RunningServer) -> None:
    short_user = item(1, userId="u1")
    refused, planned = destination(server).build_requests([short_user])
    assert refused == FieldRefused(short_user, "user_id", "left out: shorter than 5 "
                                                          "characters (Amplitude's "
                                                          "min_id_length)")
    assert isinstance(planned, PlannedRequest)
    assert events_of(planned)[0]["device_id"] == "dev-0001"
    assert "user_id" not in events_of(planned)[0]


def test_a_message_without_an_id_amplitude_takes_is_a_dead_letter(
        server: RunningServer) -> None:
    nobody = item(1, userId="u1", anonymousId="a1")
    refused = destination(server).build_requests([nobody])
    assert refused == [Rejected(nobody, (
        "user_id, device_id: Amplitude needs one of at least 5 characters (read from userId, "
        "context.device.id, anonymousId); this message has none"))]


def test_a_device_id_of_zeros_is_left_out(server: RunningServer) -> None:
    zeros = item(1, context={"device": {"id": "00000000-0000-0000-0000-000000000000"}},
                 anonymousId=None)
    refused, planned = destination(server).build_requests([zeros])
    assert isinstance(refused, FieldRefused) and refused.field == "device_id"
    assert "all zeros" in refused.reason
    assert isinstance(planned, PlannedRequest)
    assert events_of(planned)[0].get("device_id") is None


def test_the_project_minimum_id_length_is_sent_and_applied(
        server: RunningServer, fake: AmplitudeFake) -> None:
    dest = destination(server, min_id_length=2)
    assert outcomes(dest, [item(1, userId="u1", anonymousId=None)]) == [DELIVERED]
    assert fake.received[0]["body"]["options"] == {"min_id_length": 2}
    assert fake.events[0]["user_id"] == "u1"


def test_the_host_follows_the_project_data_residency() -> None:
    us = requests(destination(), item(1), item(2, "identify", traits={"a": 1}))
    eu = requests(destination(region="eu"), item(1), item(2, "identify", traits={"a": 1}))
    assert [str(p.request.url) for p in us] == ["https://api2.amplitude.com/identify",
                                                "https://api2.amplitude.com/2/httpapi"]
    assert [str(p.request.url) for p in eu] == ["https://api.eu.amplitude.com/identify",
                                                "https://api.eu.amplitude.com/2/httpapi"]


def test_requests_hold_at_most_2000_events() -> None:
    many = [item(n) for n in range(1, MAX_EVENTS + 2)]
    planned = requests(destination(), *many)
    assert [len(p.items) for p in planned] == [MAX_EVENTS, 1]
    assert len(events_of(planned[0])) == MAX_EVENTS


def test_requests_stay_under_one_megabyte() -> None:
    big = [item(n, properties={"text": "x" * 300_000}) for n in range(1, 5)]
    planned = requests(destination(), *big)
    assert [len(p.items) for p in planned] == [3, 1]
    assert all(len(p.request.content) < MAX_BYTES for p in planned)
    huge = item(9, properties={"text": "x" * MAX_BYTES})
    (rejected,) = destination().build_requests([huge])
    assert isinstance(rejected, Rejected)
    assert "Amplitude takes requests under 1000000 bytes" in rejected.reason


def test_a_repeated_insert_id_is_deduplicated_by_amplitude(
        server: RunningServer, fake: AmplitudeFake) -> None:
    # At least once: an event sent again after a lost answer counts once.
    dest = destination(server)
    assert outcomes(dest, [item(1)]) == outcomes(dest, [item(1)]) == [DELIVERED]
    assert len(fake.events) == 1 and fake.deduplicated == 1


def test_a_400_naming_events_dead_letters_them_and_sends_the_rest_again(
        server: RunningServer, fake: AmplitudeFake) -> None:
    fake.script([{"status": 400, "body": json.dumps({
        "code": 400, "error": "Invalid field values on some events",
        "events_with_invalid_fields": {"time": [1]},
        "events_with_missing_fields": {"event_type": [3]}})}])
    batch = [item(n) for n in range(1, 5)]
    ex = [e for e in exchange(destination(server), batch) if isinstance(e, Exchange)]
    assert [e.response.status_code for e in ex] == [400, 200]
    assert isinstance(ex[0].outcome, FollowUp)
    assert [e["insert_id"] for e in fake.events] == ["msg-1", "msg-3"]
    assert ex[1].outcome == [
        DELIVERED,
        Failed("amplitude 400: Invalid field values on some events (time invalid)"),
        DELIVERED,
        Failed("amplitude 400: Invalid field values on some events (event_type missing)")]


def test_a_400_naming_every_event_or_none_dead_letters_them_all(
        server: RunningServer, fake: AmplitudeFake) -> None:
    assert outcomes(destination(server, key="revoked-key"), [item(1), item(2)]) == [
        Failed("amplitude 400: Invalid API key")] * 2
    fake.silenced_devices = {"dev-0001"}
    assert outcomes(destination(server), [item(1)]) == [
        Failed("amplitude 400: Events from silenced devices (its device is silenced)")]


def test_a_413_sends_the_first_half_again_and_retries_the_rest(
        server: RunningServer, fake: AmplitudeFake) -> None:
    fake.max_bytes = 1500
    batch = [item(n, properties={"note": "y" * 300}) for n in range(1, 7)]
    later = Retry("amplitude 413: Payload too large: the request was split; retried in a "
                  "later request", after=0.0)
    assert outcomes(destination(server), batch) == [DELIVERED] * 3 + [later] * 3
    assert fake.statuses() == [413, 200]
    assert [e["insert_id"] for e in fake.events] == ["msg-1", "msg-2", "msg-3"]


def test_a_413_splits_again_until_the_request_fits(
        server: RunningServer, fake: AmplitudeFake) -> None:
    fake.max_events = 2
    batch = [item(n) for n in range(1, 9)]
    results = outcomes(destination(server), batch)
    assert fake.statuses() == [413, 413, 200]  # 8 -> 4 -> 2
    assert results[:2] == [DELIVERED] * 2
    assert all(isinstance(r, Retry) and r.after == 0.0 for r in results[2:])


def test_a_single_event_too_large_for_amplitude_is_a_dead_letter(
        server: RunningServer, fake: AmplitudeFake) -> None:
    fake.max_bytes = 300
    assert outcomes(destination(server), [item(1, properties={"note": "z" * 400})]) == [
        Failed("amplitude 413: Payload too large: this message alone is larger than "
               "Amplitude takes in one request")]


def test_a_429_pauses_the_throttled_user_and_sends_the_others_again(
        server: RunningServer, fake: AmplitudeFake) -> None:
    fake.eps_threshold = 2
    busy = [item(n, userId="user-busy", anonymousId=None) for n in (1, 2, 3)]
    calm = item(4)
    results = outcomes(destination(server), [*busy, calm])
    assert fake.statuses() == [429, 200]
    throttled = fake.received[0]
    assert throttled["status"] == 429
    pause = Retry("amplitude 429: Too many requests for some devices and users: throttled "
                  "(more than the events per second Amplitude takes for one user or "
                  "device); paused 30s", after=30.0)
    assert results == [pause] * 3 + [DELIVERED]
    assert [e["insert_id"] for e in fake.events] == ["msg-4"]


def test_a_429_naming_nobody_retries_all_after_retry_after(
        server: RunningServer, fake: AmplitudeFake) -> None:
    fake.script([{"status": 429, "headers": {"Retry-After": "7"}}])
    results = outcomes(destination(server), [item(1), item(2)])
    assert [(type(r), r.after) for r in results] == [(Retry, 7.0)] * 2  # type: ignore[union-attr]


def test_a_throttled_identify_pauses_15_seconds(server: RunningServer,
                                                fake: AmplitudeFake) -> None:
    fake.eps_threshold = 1
    both = [item(1, "identify", traits={"a": 1}),
            item(2, "identify", userId="user-0001", traits={"a": 2})]
    results = outcomes(destination(server), both)
    assert all(isinstance(r, Retry) and r.after == 15.0 for r in results)


def test_server_errors_are_retried_and_answers_without_json_read_by_status(
        server: RunningServer, fake: AmplitudeFake) -> None:
    fake.script([503])
    (result,) = outcomes(destination(server), [item(1)])
    assert isinstance(result, Retry) and result.reason == "amplitude 503: "


def test_follow_ups_stop_at_the_engine_s_limit(server: RunningServer) -> None:
    dest = destination(server)
    batch = [item(n) for n in range(1, 5)]
    (planned,) = requests(dest, *batch)
    step = ('events resend {"sent":[0,1],"n":' + str(MAX_FOLLOW_UPS)
            + ',"settled":{"2":["retry","split",0.0],"3":["failed","bad"]}}')
    again = PlannedRequest(planned.request, batch, planned.rate_key, step)
    judged = dest.classify(again, httpx.Response(413, json={"code": 413}))
    assert judged == [Retry("amplitude: sent again too many times in one attempt; retried",
                            after=0.0),
                      Retry("amplitude 413: the request was split; retried in a later "
                            "request", after=0.0),
                      Retry("split", 0.0), Failed("bad")]


def test_the_rate_key_is_the_project_without_showing_its_key() -> None:
    (planned,) = requests(destination(), item(1))
    assert planned.rate_key.startswith("amplitude:") and API_KEY not in planned.rate_key


@pytest.mark.parametrize(("settings", "problem"), [
    ({"api_key": ""}, "must not be"),
    ({"api_key": "two words"}, "one word without spaces"),
    ({"api_key": "k", "region": "asia"}, "'us' or 'eu'"),
    ({"api_key": "k", "min_id_length": 0}, "greater than or equal to 1"),
    ({"api_key": "k", "base_url": "not a url"}, "URL"),
])
def test_validate_refuses_settings_amplitude_would_refuse(settings: dict[str, Any],
                                                          problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        AmplitudeSettings.model_validate(settings)


@pytest.mark.parametrize(("options", "problem"), [
    ({"user_id": []}, "at least one dotted path"),
    ({"user_properties": {"add": {"ltv": "properties..revenue"}}}, "dotted paths"),
    ({"user_properties": {"set_onse": []}}, "did you mean 'set_once'"),
    ({"device": []}, "did you mean 'device_id'"),
])
def test_validate_names_bad_options(options: dict[str, Any], problem: str) -> None:
    problems = AmplitudeDestination.options_problems(options, "options")
    assert any(problem in p for p in problems), problems
