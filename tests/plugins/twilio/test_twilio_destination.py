"""The Twilio plugin against its contract fake: the message it sends, who may get one, the
credentials and sender settings Twilio would refuse, and how Twilio's answers are read."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from twilio_helpers import PHONE, destination, item, settings

from crossdock.destination import (
    DELIVERED,
    DestinationContext,
    Failed,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.plugins.twilio import TwilioDestination
from crossdock.plugins.twilio.fake import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    SERVICE_SID,
    TwilioFake,
)
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer


def form(planned: Any) -> dict[str, str]:
    assert isinstance(planned, PlannedRequest)
    return {k: v[0] for k, v in parse_qs(planned.request.content.decode()).items()}


def test_an_event_is_one_sms(server: RunningServer, fake: TwilioFake) -> None:
    dest = destination(server, status_callback="https://hooks.example.com/twilio/status")
    (planned,) = dest.build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    request = planned.request
    assert request.url.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(
        f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert form(planned) == {"To": PHONE, "From": FROM_NUMBER, "Body": "Your order shipped",
                             "StatusCallback": "https://hooks.example.com/twilio/status"}
    assert planned.rate_key == f"twilio:{ACCOUNT_SID}"
    assert outcomes(dest, [item(1)]) == [DELIVERED]
    assert fake.messages[-1]["status_callback"] == "https://hooks.example.com/twilio/status"


def test_an_api_key_and_a_messaging_service(server: RunningServer, fake: TwilioFake) -> None:
    dest = destination(server, auth_token=None, api_key_sid=API_KEY_SID,
                       api_key_secret=API_KEY_SECRET, from_number=None,
                       messaging_service_sid=SERVICE_SID)
    (planned,) = dest.build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    assert planned.request.headers["authorization"] == "Basic " + base64.b64encode(
        f"{API_KEY_SID}:{API_KEY_SECRET}".encode()).decode()
    assert form(planned) == {"To": PHONE, "MessagingServiceSid": SERVICE_SID,
                             "Body": "Your order shipped"}
    assert outcomes(dest, [item(1)]) == [DELIVERED]


def test_the_phone_is_read_in_e164(server: RunningServer) -> None:
    dest = destination(server, mapping={"phone_region": "US"})
    (planned,) = dest.build_requests([item(1, traits={"phone": "(914) 844-0001"})])
    assert form(planned)["To"] == PHONE


@pytest.mark.parametrize(("fields", "reason"), [
    ({"consent": {"sms": False}},
     "consent: the person's SMS consent is not granted; Twilio messages go only to people who "
     "opted in (mapping.consent must name sms)"),
    ({"consent": None}, "consent: the person's SMS consent is not granted; Twilio messages go "
                        "only to people who opted in (mapping.consent must name sms)"),
    ({"traits": {}}, "To: this person has no phone number (mapping.options.phone)"),
    ({"traits": {"phone": "(914) 844-0001"}},
     "To: a national number (no + or 00 country prefix) and no country to read it in: set "
     "mapping.options.phone_region"),
])
def test_who_cannot_get_a_message_is_a_dead_letter(server: RunningServer,
                                                   fields: dict[str, Any], reason: str) -> None:
    one = item(1, **fields)
    assert destination(server).build_requests([one]) == [Rejected(one, reason)]


@pytest.mark.parametrize(("body", "reason"), [
    ("  ", "mapping.templates.body: rendered empty; Twilio needs a Body"),
    ("x" * 1601, "mapping.templates.body: rendered 1601 characters, more than Twilio's 1600"),
])
def test_a_body_twilio_refuses_is_a_dead_letter(server: RunningServer, body: str,
                                                reason: str) -> None:
    one = item(1, body=body)
    assert destination(server).build_requests([one]) == [Rejected(one, reason)]


def test_without_the_template_the_event_name_is_the_message(server: RunningServer) -> None:
    (planned,) = destination(server).build_requests([item(1, body=None)])
    assert form(planned)["Body"] == "Order Shipped"


def test_invalid_and_unsubscribed_recipients_are_dead_letters(
        server: RunningServer, fake: TwilioFake) -> None:
    fake.opted_out.add(PHONE)
    assert outcomes(destination(server), [item(1)]) == [Failed(
        "recipient: the recipient unsubscribed (replied STOP) (twilio 21610: Attempt to send "
        "to unsubscribed recipient)")]
    fake.landlines.add("+12125550100")
    assert outcomes(destination(server), [item(2, traits={"phone": "+12125550100"})]) == [
        Failed("recipient: 'To' number is not a mobile number (twilio 21614: 'To' number "
               "+12125550100 is not a valid mobile number)")]


def planned() -> PlannedRequest:
    return PlannedRequest(httpx.Request("POST", "http://127.0.0.1/x"), [item(1)], "k")


def twilio_error(status: int, code: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={
        "code": code, "message": message, "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}"})


@pytest.mark.parametrize(("response", "outcome"), [
    (twilio_error(429, 20429, "Too Many Requests"), Retry("twilio 20429: Too Many Requests")),
    (twilio_error(429, 20429, "Too Many Requests", **{"retry-after": "3"}),
     Retry("twilio 20429: Too Many Requests", 3.0)),
    (twilio_error(401, 20003, "Authenticate"), Failed("bad credentials (twilio 20003: "
                                                      "Authenticate)")),
    (twilio_error(400, 21211, "Invalid 'To' Phone Number: +1"),
     Failed("recipient: invalid 'To' phone number (twilio 21211: Invalid 'To' Phone Number: "
            "+1)")),
    (twilio_error(400, 21606, "not your number"), Failed("twilio 21606: not your number")),
    (twilio_error(500, 20500, "Internal error"), Retry("twilio 20500: Internal error")),
    (httpx.Response(503, text="<html>down</html>"), Retry("HTTP 503: <html>down</html>")),
    (httpx.Response(201, json={"sid": "SM1"}), DELIVERED),
])
def test_how_twilio_answers_are_read(server: RunningServer, response: httpx.Response,
                                     outcome: Any) -> None:
    assert destination(server).classify(planned(), response) == outcome


def test_a_throttled_request_through_the_fake_is_retried(
        server: RunningServer, fake: TwilioFake) -> None:
    fake.max_concurrency = 0
    assert outcomes(destination(server), [item(1)]) == [
        Retry("twilio 20429: Too Many Requests")]
    assert fake.messages == []


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"account_sid": "AC123"}, "AC and 32 hexadecimal digits"),
    ({"auth_token": None}, "set auth_token, or api_key_sid and api_key_secret"),
    ({"api_key_sid": API_KEY_SID, "api_key_secret": "s"}, "not both"),
    ({"auth_token": None, "api_key_sid": API_KEY_SID}, "set auth_token, or api_key_sid"),
    ({"api_key_sid": "AK1", "auth_token": None, "api_key_secret": "s"}, "SK and 32"),
    ({"auth_token": "two words"}, "one word"),
    ({"from_number": None}, "set from_number or messaging_service_sid"),
    ({"from_number": "555-1234"}, "a Twilio number in E.164"),
    ({"from_number": "THIS IS TOO LONG"}, "a Twilio number in E.164"),
    ({"messaging_service_sid": "MG1"}, "MG and 32"),
    ({"status_callback": "https://my_host.example.com/s"}, "underscores"),
    ({"status_callback": "not a url"}, "URL"),
])
def test_settings_twilio_would_refuse(server: RunningServer, overrides: dict[str, Any],
                                      problem: str) -> None:
    raw = {k: v for k, v in settings(server, **overrides).items() if v is not None}
    parsed, problems = TwilioDestination.parse_settings(raw)
    assert parsed is None and any(problem in p for p in problems), problems
    assert not any(AUTH_TOKEN in p or "two words" in p for p in problems)


@pytest.mark.parametrize("sender", ["+15017122661", "12345", "CROSSDOCK"])
def test_senders_twilio_takes(server: RunningServer, sender: str) -> None:
    parsed, problems = TwilioDestination.parse_settings(settings(server, from_number=sender))
    assert problems == [] and parsed is not None and parsed.from_number == sender


def test_validate_warns_when_every_event_would_send_an_sms(server: RunningServer) -> None:
    dest = destination(server)
    context = DestinationContext("sms", dest.mapping, {"events": None})
    assert dest.config_warnings(context) == [
        "filter.events.allow is not set: every event sends an SMS; name the events that "
        "should (filter: {events: {allow: [Order Shipped]}})"]
    named = DestinationContext("sms", dest.mapping, {"events": ["Order Shipped"]})
    assert dest.config_warnings(named) == []


# -- a retry after an answer that was lost ---------------------------------------------------


def again(one: Any, *, made: float | None = None) -> Any:
    """`one` as the outbox hands it over on its second attempt; the row made at `made`."""
    return replace(one, attempts=2, created_at=time.time() - 60 if made is None else made)


def test_a_retry_after_a_lost_answer_does_not_text_twice(server: RunningServer,
                                                         fake: TwilioFake) -> None:
    # Twilio took the SMS, but its answer never came back (a timeout): the attempt is retried.
    server.call(lambda: setattr(fake, "lost_answers", 1))
    first = item(1)
    (outcome,) = outcomes(destination(server), [replace(first, created_at=time.time() - 60)])
    assert isinstance(outcome, Retry) and len(fake.messages) == 1
    # Twilio takes no idempotency key: the retry reads the person's latest messages first,
    # finds its SMS and sends nothing.
    assert outcomes(destination(server), [again(first)]) == [DELIVERED]
    assert len(fake.messages) == 1
    lookup = fake.received[-1]
    assert (lookup["method"], lookup["query"]) == ("GET", {"To": PHONE, "PageSize": "50"})


def test_a_retry_whose_sms_twilio_never_took_sends_it(server: RunningServer,
                                                      fake: TwilioFake) -> None:
    # A 429 is never processed; the lookup finds nothing and the SMS goes in the same attempt.
    server.call(lambda: fake.script([{"status": 429, "body": '{"code": 20429, "message": "Too Many '
                                                        'Requests"}'}]))
    first = item(1)
    assert isinstance(outcomes(destination(server), [first])[0], Retry)
    assert outcomes(destination(server), [again(first)]) == [DELIVERED]
    assert [m["body"] for m in fake.messages] == ["Your order shipped"]
    assert [r["method"] for r in fake.received][-2:] == ["GET", "POST"]


@pytest.mark.parametrize("earlier", [
    # The same text to the same phone, sent before this row existed: another message's SMS.
    {"made": "later"},
    {"body": "Your order is delayed"},
    {"to": "+19148440002"},
])
def test_only_this_messages_own_sms_counts_as_sent(server: RunningServer, fake: TwilioFake,
                                                   earlier: dict[str, str]) -> None:
    dest = destination(server)
    assert outcomes(dest, [item(1, body=earlier.get("body", "Your order shipped"),
                                traits={"phone": earlier.get("to", PHONE)})]) == [DELIVERED]
    made = time.time() + 3600 if earlier.get("made") == "later" else None
    assert outcomes(dest, [again(item(2), made=made)]) == [DELIVERED]
    assert len(fake.messages) == 2


def test_a_lookup_that_is_not_twilios_list_is_retried(server: RunningServer) -> None:
    dest = destination(server)
    (planned,) = dest.build_requests([again(item(1))])
    assert isinstance(planned, PlannedRequest) and planned.step == "lookup"
    # A proxy's page says nothing of what Twilio sent: no SMS on its word.
    outcome = dest.classify(planned, httpx.Response(200, text="<html>proxy</html>",
                                                    request=planned.request))
    assert isinstance(outcome, Retry) and "without a message list" in outcome.reason
