"""The Twilio contract fake over real HTTP: it refuses what Twilio refuses (each rule's source
is on docs/destinations/twilio.md)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time

import httpx
import pytest

from crossdock.plugins.twilio.fake import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    SERVICE_SID,
    TwilioFake,
)
from crossdock.testing.fakeserver import RunningServer, fake_process

TO = "+19148440001"
OK = {"To": TO, "From": FROM_NUMBER, "Body": "hello"}


def auth(user: str = ACCOUNT_SID, password: str = AUTH_TOKEN) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def send(server: RunningServer, form: dict[str, str] | None = None, *,
         authorization: str | None = None, account: str = ACCOUNT_SID) -> httpx.Response:
    return httpx.post(f"{server.url}/2010-04-01/Accounts/{account}/Messages.json",
                      data=form if form is not None else OK,
                      headers={"authorization": authorization or auth()}, timeout=10)


def listed(server: RunningServer, authorization: str | None = None,
           **query: str) -> httpx.Response:
    return httpx.get(f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                     params=query, headers={"authorization": authorization or auth()},
                     timeout=10)


def test_the_list_is_newest_first_filtered_by_to_and_from(server: RunningServer,
                                                          fake: TwilioFake) -> None:
    for to, body in ((TO, "one"), ("+19148440002", "other"), (TO, "two")):
        assert send(server, {**OK, "To": to, "Body": body}).status_code == 201
    page = listed(server, To=TO).json()
    assert [m["body"] for m in page["messages"]] == ["two", "one"]
    assert page["page_size"] == 50 and page["next_page_uri"] is None
    created = email.utils.parsedate_to_datetime(page["messages"][0]["date_created"])
    assert abs(created.timestamp() - time.time()) < 60
    assert [m["body"] for m in listed(server, PageSize="1").json()["messages"]] == ["two"]
    assert listed(server, From="+15550000000").json()["messages"] == []
    assert listed(server, PageSize="0").status_code == 400
    assert listed(server, authorization=auth(password="wrong")).status_code == 401


def test_a_lost_answer_still_creates_the_message(server: RunningServer,
                                                 fake: TwilioFake) -> None:
    server.call(lambda: setattr(fake, "lost_answers", 1))
    assert send(server).status_code == 504
    assert send(server).status_code == 201
    assert len(fake.messages) == 2


def test_a_message_is_created(server: RunningServer, fake: TwilioFake) -> None:
    answer = send(server, {**OK, "StatusCallback": "https://example.com/status"})
    assert answer.status_code == 201
    message = answer.json()
    assert message["sid"].startswith("SM") and len(message["sid"]) == 34
    assert (message["to"], message["from"], message["body"]) == (TO, FROM_NUMBER, "hello")
    assert message["status"] == "queued" and message["error_code"] is None
    assert message["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message['sid']}.json"
    # An API key of the account authenticates too; a Messaging Service picks the sender.
    by_key = send(server, {"To": TO, "MessagingServiceSid": SERVICE_SID, "Body": "hi"},
                  authorization=auth(API_KEY_SID, API_KEY_SECRET))
    assert by_key.status_code == 201 and by_key.json()["status"] == "accepted"
    assert len(fake.messages) == 2


@pytest.mark.parametrize(("form", "status", "code"), [
    ({"From": FROM_NUMBER, "Body": "x"}, 400, 21604),
    ({**OK, "To": "9148440001"}, 400, 21211),
    ({"To": TO, "Body": "x"}, 400, 21603),
    ({**OK, "From": "+15550001111"}, 400, 21606),
    ({"To": TO, "MessagingServiceSid": "MG" + "f" * 32, "Body": "x"}, 400, 21705),
    ({"To": TO, "From": FROM_NUMBER}, 400, 21602),
    ({**OK, "Body": "x" * 1601}, 400, 21617),
    ({**OK, "StatusCallback": "https://my_host.example.com/s"}, 400, 21609),
    ({**OK, "StatusCallback": "ftp://example.com/s"}, 400, 21609),
])
def test_refusals(server: RunningServer, fake: TwilioFake, form: dict[str, str], status: int,
                  code: int) -> None:
    answer = send(server, form)
    assert answer.status_code == status
    body = answer.json()
    assert body["code"] == code and body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert fake.messages == []


@pytest.mark.parametrize("authorization", [
    "Bearer x", auth(password="wrong"), auth(API_KEY_SID, "wrong"), "Basic !!!"])
def test_bad_credentials_are_20003(server: RunningServer, authorization: str) -> None:
    answer = send(server, authorization=authorization)
    assert answer.status_code == 401 and answer.json()["code"] == 20003


def test_credentials_of_one_account_cannot_send_for_another(server: RunningServer) -> None:
    answer = send(server, account="AC" + "f" * 32)
    assert answer.status_code == 401 and answer.json()["code"] == 20003


def test_a_json_body_has_no_to(server: RunningServer) -> None:
    answer = httpx.post(f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                        json=OK, headers={"authorization": auth()}, timeout=10)
    assert answer.status_code == 400 and answer.json()["code"] == 21604


def test_opted_out_and_landline_recipients(server: RunningServer, fake: TwilioFake) -> None:
    fake.opted_out.add(TO)
    assert send(server).json()["code"] == 21610
    fake.landlines.add("+12125550100")
    assert send(server, {**OK, "To": "+12125550100"}).json()["code"] == 21614


async def test_too_many_concurrent_requests_are_20429(server: RunningServer,
                                                      fake: TwilioFake) -> None:
    fake.max_concurrency = 2
    fake.latency = 0.3
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(*(client.post(
            f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data=OK,
            headers={"authorization": auth()}) for _ in range(4)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 201, 429, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["code"] == 20429
    assert len(fake.messages) == 2  # a 429 is never processed


def test_scripted_replies_answer_first(server: RunningServer, fake: TwilioFake) -> None:
    fake.script([503])
    assert send(server).status_code == 503
    assert send(server).status_code == 201
    assert fake.statuses() == [503, 201]


def test_the_fake_runs_on_its_own() -> None:
    with fake_process("crossdock.plugins.twilio.fake", "--auth-token", "t") as proc:
        assert "Twilio fake on" in proc.banner
        answer = httpx.post(f"{proc.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                            data=OK, headers={"authorization": auth(password="t")})
        assert answer.status_code == 201
