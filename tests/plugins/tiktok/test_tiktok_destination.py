"""The TikTok plugin against its contract fake: the event it sends, the normalization and
hashing of the person, Segment's e-commerce properties, and how TikTok's response codes are
read (each rule's source is on docs/destinations/tiktok.md)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from tiktok_helpers import PIXEL, TOKEN, destination, events_of, item

from crossdock.destination import (
    DELIVERED,
    DestinationContext,
    Failed,
    FieldRefused,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.tiktok import TikTokDestination, TikTokSettings
from crossdock.plugins.tiktok.const import MAX_EVENTS
from crossdock.plugins.tiktok.fake import TikTokFake
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def planned_of(dest: TikTokDestination, *items: Any) -> list[PlannedRequest]:
    return [p for p in dest.build_requests(list(items)) if isinstance(p, PlannedRequest)]


def test_an_event_is_sent_with_its_time_id_and_hashed_person(
        server: RunningServer, fake: TikTokFake) -> None:
    one = item(1, traits={"email": "  Ada1@Example.COM ", "phone": "+1 (914) 844-0001"},
               context={"ip": "203.0.113.9", "userAgent": "Mozilla/5.0",
                        "locale": "en-US", "page": {"url": "https://shop.example/thanks",
                                                    "referrer": "https://tiktok.com"}},
               properties={"ttclid": "E.C.P.abc", "order_id": "o-1"})
    assert outcomes(destination(server), [one]) == [DELIVERED]
    request = fake.received[0]
    assert request["path"] == "/open_api/v1.3/event/track/"
    assert request["headers"]["access-token"] == TOKEN
    body = request["body"]
    assert (body["event_source"], body["event_source_id"]) == ("web", PIXEL)
    assert "test_event_code" not in body
    (event,) = fake.events
    assert event == {
        "event": "Purchase", "event_time": 1714564800, "event_id": "msg-1",
        "user": {"email": sha("ada1@example.com"), "phone": sha("+19148440001"),
                 "external_id": sha("user-1"), "ttclid": "E.C.P.abc", "ip": "203.0.113.9",
                 "user_agent": "Mozilla/5.0", "locale": "en-US"},
        "page": {"url": "https://shop.example/thanks", "referrer": "https://tiktok.com"},
        "properties": {"order_id": "o-1"}}


def test_values_already_hashed_are_never_hashed_twice(server: RunningServer) -> None:
    hashed = sha("ada@example.com")
    (planned,) = planned_of(destination(server), item(
        1, traits={"email": hashed.upper(), "phone": hashed}, userId=hashed))
    user = events_of(planned)[0]["user"]
    assert user["email"] == user["phone"] == user["external_id"] == hashed


def test_a_phone_tiktok_cannot_use_is_left_out_and_reported(server: RunningServer) -> None:
    one = item(1, traits={"email": "a@b.co", "phone": "(914) 844-0001"})
    refused, planned = destination(server).build_requests([one])
    assert refused == FieldRefused(one, "user.phone", (
        "left out: a national number (no + or 00 country prefix) and no country to read it "
        "in: set mapping.options.phone_region"))
    assert isinstance(planned, PlannedRequest)
    assert "phone" not in events_of(planned)[0]["user"]
    (planned,) = planned_of(destination(server, options={"phone_region": "US"}), one)
    assert events_of(planned)[0]["user"]["phone"] == sha("+19148440001")


def test_the_click_id_is_read_from_the_page_url_when_the_event_lacks_it() -> None:
    # Segment's tiktok-conversions reads ttclid from the page URL's query too.
    page = {"page": {"url": "https://shop.example/p?utm=x&ttclid=E.C.P.url"}}
    (sent,) = events_of(planned_of(destination(), item(1, traits={}, userId=None,
                                                         context=page))[0])
    assert sent["user"]["ttclid"] == "E.C.P.url"
    (sent,) = events_of(planned_of(destination(), item(2, context=page,
                                                         properties={"ttclid": "own"}))[0])
    assert sent["user"]["ttclid"] == "own"


def test_a_person_tiktok_cannot_match_is_a_dead_letter(server: RunningServer) -> None:
    nobody = item(1, userId=None, traits={}, context={"ip": "203.0.113.9"})
    assert destination(server).build_requests([nobody]) == [Rejected(nobody, (
        "user: TikTok matches an event to a person by email, phone, external_id, ttclid or "
        "ttp; this message has none"))]


def test_segment_products_become_contents_with_value_and_currency(
        server: RunningServer, fake: TikTokFake) -> None:
    order = item(1, properties={
        "order_id": "o-9", "revenue": 42.5, "currency": "eur",
        "products": [{"product_id": "p1", "name": "Shoe", "price": 30, "quantity": 1.0,
                      "category": "shoes"}, {"sku": "s-2", "price": 12.5}]})
    viewed = item(2, event="ViewContent", properties={"product_id": "p3", "name": "Hat"})
    searched = item(3, event="Search", properties={"query": "red shoes"})
    dest = destination(server, options={"content_type": "product_group"})
    assert outcomes(dest, [order, viewed, searched]) == [DELIVERED]  # one request
    assert [e["properties"] for e in fake.events] == [
        {"contents": [{"content_id": "p1", "content_name": "Shoe", "content_category": "shoes",
                       "price": 30, "quantity": 1},
                      {"content_id": "s-2", "price": 12.5}],
         "content_type": "product_group", "currency": "EUR", "value": 42.5,
         "order_id": "o-9"},
        {"contents": [{"content_id": "p3", "content_name": "Hat"}],
         "content_type": "product_group"},
        {"query": "red shoes"}]


def test_a_value_without_a_currency_is_left_out(server: RunningServer) -> None:
    one = item(1, properties={"value": 10, "currency": "euros"})
    refused = [p for p in destination(server).build_requests([one])
               if isinstance(p, FieldRefused)]
    assert [(r.field, r.reason) for r in refused] == [
        ("properties.currency", "left out: not an ISO 4217 code of three letters"),
        ("properties.value", "left out: TikTok takes a value only with its currency "
                             "(properties.currency)")]


def test_segment_ecommerce_events_map_to_tiktok_standard_events() -> None:
    names = TikTokDestination.default_mapping()["event_names"]
    assert names["Order Completed"] == "Purchase"
    assert names["Product Viewed"] == "ViewContent"
    assert names["Product Added"] == "AddToCart"
    assert names["Checkout Started"] == "InitiateCheckout"
    assert names["Products Searched"] == "Search"


def test_a_test_event_code_sends_to_test_events_only(server: RunningServer,
                                                     fake: TikTokFake) -> None:
    dest = destination(server, test_event_code="TEST12345")
    assert outcomes(dest, [item(1)]) == [DELIVERED]
    assert fake.received[0]["body"]["test_event_code"] == "TEST12345"
    assert fake.events == [] and len(fake.test_events) == 1


def test_validate_warns_about_a_test_event_code_left_in(server: RunningServer) -> None:
    context = DestinationContext("tiktok", {}, {})
    assert destination(server).config_warnings(context) == []
    (warning,) = destination(server, test_event_code="TEST1").config_warnings(context)
    assert "remove it in production" in warning


def test_event_id_deduplicates_a_retry(server: RunningServer, fake: TikTokFake) -> None:
    dest = destination(server)
    assert outcomes(dest, [item(1)]) == outcomes(dest, [item(1)]) == [DELIVERED]
    assert len(fake.events) == 1 and fake.deduplicated == 1


def test_the_sites_event_id_is_sent_so_the_pixels_copy_is_deduplicated(
        server: RunningServer, fake: TikTokFake) -> None:
    # The pixel already sent this purchase with the site's id; TikTok drops the server's copy
    # only when it carries that id (RudderStack reads properties.eventId / event_id first).
    pixel_copy = {"event": "Purchase", "event_time": 1714564800, "event_id": "order-9",
                  "user": {"email": sha("ada1@example.com")}}
    assert httpx.post(server.url + "/open_api/v1.3/event/track/", headers={
        "access-token": TOKEN}, json={"event_source": "web", "event_source_id": PIXEL,
                                      "data": [pixel_copy]}, timeout=10).json()["code"] == 0
    dest = destination(server)
    assert outcomes(dest, [item(1, properties={"event_id": "order-9"})]) == [DELIVERED]
    assert len(fake.events) == 1 and fake.deduplicated == 1
    (sent,) = events_of(planned_of(dest, item(2, properties={"eventId": 77}))[0])
    assert sent["event_id"] == "77"
    (sent,) = events_of(planned_of(dest, item(3, properties={"event_id": " "}))[0])
    assert sent["event_id"] == "msg-3"


def test_requests_hold_at_most_1000_events() -> None:
    planned = planned_of(destination(), *[item(n) for n in range(1, MAX_EVENTS + 2)])
    assert [len(p.items) for p in planned] == [MAX_EVENTS, 1]
    assert str(planned[0].request.url) == (
        "https://business-api.tiktok.com/open_api/v1.3/event/track/")


def test_a_wrong_token_is_a_dead_letter(server: RunningServer, fake: TikTokFake) -> None:
    assert outcomes(destination(server, token="revoked"), [item(1)]) == [Failed(
        "bad access token (tiktok 40105: Access token is invalid or has been revoked)")]
    assert fake.received[0]["status"] == 200  # TikTok says it in the body


def test_a_pixel_the_token_cannot_write_is_a_dead_letter(server: RunningServer,
                                                          fake: TikTokFake) -> None:
    fake.pixels = {"CANOTHER"}
    assert outcomes(destination(server), [item(1)]) == [
        Failed(f"tiktok 40001: No permission to operate pixel code: {PIXEL}")]


def test_code_40100_is_retried(server: RunningServer, fake: TikTokFake) -> None:
    fake.qps = 1
    dest = destination(server)
    assert outcomes(dest, [item(1)]) == [DELIVERED]
    assert outcomes(dest, [item(2)]) == [
        Retry("tiktok 40100: Too many requests. Please retry in some time.", 1.0)]


def test_a_40002_naming_one_event_dead_letters_it_and_retries_the_others() -> None:
    dest = destination()
    (planned,) = planned_of(dest, item(1), item(2), item(3))
    message = "Batch.1.properties.contents.0.content_id: Not a valid string."
    answer = httpx.Response(200, json={"code": 40002, "message": message, "data": {}})
    again = Retry("tiktok 40002: another event of the request was refused; sent again "
                  "without it", after=0.0)
    assert dest.classify(planned, answer) == [again, Failed(f"tiktok 40002: {message}"), again]
    (alone,) = planned_of(dest, item(1))
    assert dest.classify(alone, answer) == Failed(f"tiktok 40002: {message}")


def test_the_fake_names_the_event_it_refuses(server: RunningServer, fake: TikTokFake) -> None:
    good = item(1)
    bad = item(2, properties={"products": [{"product_id": "p1"}]})
    (planned,) = planned_of(destination(server), good, bad)
    body = json.loads(planned.request.content)
    body["data"][1]["properties"]["contents"][0]["content_id"] = 7
    answer = httpx.post(str(planned.request.url), json=body,
                        headers={"access-token": TOKEN}).json()
    assert answer["code"] == 40002
    assert answer["message"] == "Batch.1.properties.contents.0.content_id: Not a valid string."
    assert fake.events == []  # nothing of the request is recorded


@pytest.mark.parametrize(("code", "expected"), [
    (0, DELIVERED),
    (20001, DELIVERED),
    (40002, Failed("tiktok 40002: bad")),
    (40104, Failed("bad access token (tiktok 40104: bad)")),
    (40102, Failed("bad access token (tiktok 40102: bad)")),
    (40100, Retry("tiktok 40100: bad", 1.0)),
    (40900, Failed("tiktok 40900: bad")),
    (50000, Retry("tiktok 50000: bad")),
    (51021, Retry("tiktok 51021: bad")),
    (12345, Failed("tiktok 12345: bad")),
])
def test_response_codes_are_classified(code: int, expected: Any) -> None:
    dest = destination()
    (planned,) = planned_of(dest, item(1))
    answer = httpx.Response(200, json={"code": code, "message": "bad", "data": {}})
    assert dest.classify(planned, answer) == expected


def test_an_answer_without_a_code_is_read_by_its_status() -> None:
    dest = destination()
    (planned,) = planned_of(dest, item(1))
    assert dest.classify(planned, httpx.Response(200, text="<html>ok</html>")) == DELIVERED
    got = dest.classify(planned, httpx.Response(503, text="busy"))
    assert isinstance(got, Retry)
    assert dest.classify(planned, httpx.Response(401, text="no")) == Failed(
        "tiktok HTTP 401: no")
    # A success code under an error status is no success.
    assert isinstance(dest.classify(planned, httpx.Response(502, json={"code": 0})), Retry)


def test_the_rate_key_never_shows_the_token() -> None:
    (planned,) = planned_of(destination(), item(1))
    assert planned.rate_key.startswith("tiktok:") and TOKEN not in planned.rate_key


@pytest.mark.parametrize(("settings", "problem"), [
    ({"access_token": "", "event_source_id": PIXEL}, "must not be"),
    ({"access_token": "a b", "event_source_id": PIXEL}, "one word without spaces"),
    ({"access_token": "t"}, "Field required"),
    ({"access_token": "t", "event_source_id": "pixel code!"}, "letters, digits"),
    ({"access_token": "t", "event_source_id": PIXEL, "event_source": "tv"}, "'web'"),
    ({"access_token": "t", "event_source_id": PIXEL, "test_event_code": "TEST 1"},
     "test event code"),
    ({"access_token": "t", "event_source_id": PIXEL,
      "base_url": "https://business-api.tiktok.com/open_api/v1.2"}, "/open_api/v1.3"),
])
def test_validate_refuses_settings_tiktok_would_refuse(settings: dict[str, Any],
                                                       problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        TikTokSettings.model_validate(settings)


@pytest.mark.parametrize(("options", "problem"), [
    ({"external_id": []}, "at least one dotted path"),
    ({"content_type": "sku"}, "'product'"),
    ({"phone_region": "Atlantis"}, "not a region"),
    ({"externalid": []}, "did you mean 'external_id'"),
])
def test_validate_names_bad_options(options: dict[str, Any], problem: str) -> None:
    problems = TikTokDestination.options_problems(options, "options")
    assert any(problem in p for p in problems), problems
