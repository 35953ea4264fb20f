"""The facebook_audience contract fake over real loopback HTTP: it enforces Meta's contract,
and the plugin's requests keep its audience holding exactly the people who entered."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from facebook_helpers import ATTEMPT_TIME, SECRET, destination, item

from crossdock.destination import DELIVERED, Failed, Retry
from crossdock.plugins.facebook_audience.const import DEFAULT_API_VERSION
from crossdock.plugins.facebook_audience.destination import appsecret_proof
from crossdock.plugins.facebook_audience.fake import (
    DEFAULT_AUDIENCE,
    DEFAULT_TOKEN,
    FacebookAudienceFake,
    make_app,
)
from crossdock.testing.exchange import outcomes as send
from crossdock.testing.fakeserver import RunningServer, fake_process, serve


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()



def raw_upload(server: RunningServer, body: Any, method: str = "POST",
               params: dict[str, str] | None = None) -> httpx.Response:
    if params is None:
        params = {"access_token": DEFAULT_TOKEN,
                  "appsecret_proof": appsecret_proof(SECRET, DEFAULT_TOKEN)}
    return httpx.request(method, f"{server.url}/{DEFAULT_API_VERSION}/{DEFAULT_AUDIENCE}/users",
                         params=params, json=body)


def upload(rows: list[list[str]], schema: list[str] | None = None, sid: int = 1, seq: int = 1,
           last: bool = True) -> dict[str, Any]:
    return {"session": {"session_id": sid, "batch_seq": seq, "last_batch_flag": last,
                        "estimated_num_total": len(rows)},
            "payload": {"schema": schema or ["EMAIL"], "data": rows}}


def test_entered_and_exited_people_end_in_the_audience(
        server: RunningServer, fake: FacebookAudienceFake) -> None:
    dest = destination(server.url, app_secret=SECRET, schema=["EMAIL", "PHONE"])
    assert send(dest, [item(n) for n in range(1, 6)]) == [DELIVERED]
    assert send(dest, [item(2, "audience_exited"), item(4, "audience_exited"),
                       item(6)]) == [DELIVERED, DELIVERED]
    emails = fake.member_values("EMAIL")
    assert emails == {sha(f"person{n}@example.com") for n in (1, 3, 5, 6)}
    assert all(len(m) == 2 for m in fake.members())  # EMAIL and PHONE, both hashed
    state = httpx.get(f"{server.url}/_fake/state").json()
    assert len(state["audiences"][DEFAULT_AUDIENCE]) == 4
    assert {s["method"] for s in state["sessions"].values()} == {"POST", "DELETE"}
    assert all(s["closed"] for s in state["sessions"].values())


def test_a_big_upload_is_one_session_of_three_batches(
        server: RunningServer, fake: FacebookAudienceFake) -> None:
    dest = destination(server.url, app_secret=SECRET, schema=["EMAIL"])
    items = [item(n, traits={"email": f"p{n}@example.com"}) for n in range(1, 25_001)]
    assert send(dest, items) == [DELIVERED] * 3
    assert len(fake.members()) == 25_000
    (session,) = fake.snapshot()["sessions"].values()
    assert session["batches"] == [1, 2, 3] and session["closed"]


def test_a_retried_batch_is_a_replay_not_an_error(
        server: RunningServer, fake: FacebookAudienceFake) -> None:
    dest = destination(server.url, app_secret=SECRET)
    assert send(dest, [item(1), item(2)]) == [DELIVERED]
    assert send(dest, [item(1), item(2)]) == [DELIVERED]
    assert fake.replays == 1
    assert len(fake.members()) == 2


def test_auth_is_enforced(server: RunningServer, fake: FacebookAudienceFake) -> None:
    good = destination(server.url, app_secret=SECRET)
    assert send(destination(server.url, app_secret=SECRET, access_token="stolen"),
                [item(1)]) == [Failed("access token invalid (190): Invalid OAuth access token "
                                      "- Cannot parse access token, fbtrace_id AFakeTraceId")]
    (no_proof,) = send(destination(server.url), [item(1)])
    assert isinstance(no_proof, Failed) and "appsecret_proof" in no_proof.reason
    (bad_proof,) = send(destination(server.url, app_secret="wrong"), [item(1)])
    assert isinstance(bad_proof, Failed) and "Invalid appsecret_proof" in bad_proof.reason
    assert send(good, [item(1)]) == [DELIVERED]
    assert fake.errors == {190: 1, 100: 2}


def test_a_time_bound_proof_expires_after_5_minutes() -> None:
    # Meta: "Time-stamped app secret proofs will be considered expired after 5 minutes".
    fake = FacebookAudienceFake(app_secret=SECRET, clock=lambda: ATTEMPT_TIME)
    with serve(make_app(fake)) as server:
        dest = destination(server.url, app_secret=SECRET, schema=["EMAIL"])
        (stale,) = send(dest, [item(1)], now=ATTEMPT_TIME - 301)
        (fresh,) = send(dest, [item(1)], now=ATTEMPT_TIME + 299)
        untimed = raw_upload(server, {"session": {"session_id": 9, "batch_seq": 1,
                                                  "last_batch_flag": True},
                                      "payload": {"schema": ["EMAIL"],
                                                  "data": [[hashlib.sha256(b"x").hexdigest()]]}})
    assert isinstance(stale, Failed) and "Expired appsecret_proof" in stale.reason
    assert fresh == DELIVERED
    # The proof without a time (the SDKs' form) is still accepted.
    assert untimed.status_code == 200, untimed.text


@pytest.mark.parametrize(("body", "message"), [
    (upload([["a@example.com"]]), "EMAIL: must be SHA-256 hashed"),
    (upload([[sha("x"), sha("y")]]), "a row must be a list of 1 values"),
    (upload([[sha("x")]], schema=["EMAIL", "EMAIL"]), "must not repeat a field"),
    (upload([[sha("x")]], schema=["SSN"]), "unknown field(s) SSN"),
    (upload([[sha("x")]], schema=["MADID"]), "MADID: must not be hashed"),
    (upload([[sha(str(n))] for n in range(10_001)]), "at most 10000 users per request"),
    ({"payload": {"schema": ["EMAIL"], "data": [[sha("x")]]}}, "session is required"),
    ({**upload([[sha("x")]]), "session": {"session_id": 1, "batch_seq": 0,
                                          "last_batch_flag": True}},
     "session.batch_seq must be a positive integer"),
])
def test_shapes_are_enforced(server: RunningServer, body: Any, message: str) -> None:
    response = raw_upload(server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100 and message in error["message"]


def test_a_finished_session_takes_no_new_batch(server: RunningServer) -> None:
    assert raw_upload(server, upload([[sha("a")]], sid=9, seq=1, last=True)).status_code == 200
    late = raw_upload(server, upload([[sha("b")]], sid=9, seq=2, last=True))
    assert late.status_code == 400 and "already finished" in late.json()["error"]["message"]


def test_an_unknown_audience_is_error_100_33(server: RunningServer) -> None:
    dest = destination(server.url, app_secret=SECRET, audience_id="123")
    (outcome,) = send(dest, [item(1)])
    assert isinstance(outcome, Failed) and outcome.reason.startswith("facebook error 100/33")


def test_scripted_graph_errors_are_classified(
        server: RunningServer, fake: FacebookAudienceFake) -> None:
    dest = destination(server.url, app_secret=SECRET)
    fake.fail_with_code(17, "User request limit reached", retry_after="60")
    fake.fail_with_code(2, "Service temporarily unavailable", status=503)
    fake.fail_with_code(190, "Error validating access token: Session has expired",
                        subcode=463)
    assert send(dest, [item(1)]) == [Retry("facebook throttled (17): User request limit "
                                           "reached, fbtrace_id AFakeTraceId", 60.0)]
    assert send(dest, [item(1)]) == [Retry("facebook error 2 (HTTP 503): Service temporarily "
                                           "unavailable, fbtrace_id AFakeTraceId", None)]
    assert send(dest, [item(1)]) == [Failed("access token invalid (190): Error validating "
                                            "access token: Session has expired, fbtrace_id "
                                            "AFakeTraceId")]
    assert fake.members() == []


def test_the_fake_runs_standalone() -> None:
    with fake_process("crossdock.plugins.facebook_audience.fake",
                      "--audience", "42", "--token", "tok") as running:
        assert running.banner.startswith(f"facebook_audience fake on {running.url} ")
        assert httpx.get(running.url + "/_fake/state").json()["audiences"] == {"42": []}
        dest = destination(running.url, audience_id="42", access_token="tok")
        assert send(dest, [item(1)]) == [DELIVERED]
