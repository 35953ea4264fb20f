"""The collector over real HTTP: uvicorn on 127.0.0.1 in a thread, a real SQLite file
(the harness: collector_helpers.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_helpers import (
    SHOP_KEY,
    START,
    WRITE_KEY,
    Running,
    basic,
    bearer,
    loaded_config,
    serve,
)

from crossdock.json_shape import DEPTH_RULE, FINITE_RULE, MAX_DEPTH


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with serve(loaded_config(tmp_path)) as r:
        yield r


@pytest.fixture
def client(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, timeout=10) as c:
        yield c


def test_track_with_basic_auth_is_queued_and_profiled(client: httpx.Client,
                                                      running: Running) -> None:
    r = client.post("/v1/track", headers=basic(),
                    json={"anonymousId": "a1", "event": "Signed Up", "sessionId": "s"})
    assert r.status_code == 200, r.text
    assert r.json()["response"] == {"status": "queued", "accepted": 1, "duplicates": 0,
                                    "errors": []}
    profile = running.show("a1")
    assert profile is not None and profile["messages"] == 1
    # Bearer with the write key works too; the path decides the type.
    r = client.post("/v1/identify", headers=bearer(WRITE_KEY),
                    json={"type": "track", "userId": "u1", "anonymousId": "a1",
                          "traits": {"plan": "pro"}})
    assert r.status_code == 200, r.text
    profile = running.show("u1")
    assert profile is not None and profile["attributes"]["custom"]["plan"]["value"] == "pro"


@pytest.mark.parametrize(("headers", "message"), [
    ({}, "authorization: send the write key"),
    (basic("nope"), "authorization: unknown write key"),
    ({"Authorization": "Basic !!!"}, "authorization: send the write key"),
    (bearer(SHOP_KEY), "authorization: unknown write key"),
])
def test_bad_credentials_get_401(client: httpx.Client, headers: dict[str, str],
                                 message: str) -> None:
    r = client.post("/v1/track", headers=headers, json={"anonymousId": "a", "event": "E"})
    assert r.status_code == 401
    assert r.json()["response"]["status"] == "error"
    assert r.json()["response"]["message"].startswith(message)
    assert "Basic" in r.headers["WWW-Authenticate"]


def test_malformed_and_invalid_bodies_get_clear_errors(client: httpx.Client,
                                                       running: Running) -> None:
    r = client.post("/v1/track", headers=basic(), content=b'{"event": ')
    assert r.status_code == 400
    assert r.json()["response"]["message"].startswith("body: not valid JSON")
    r = client.post("/v1/track", headers=basic(), json=[1, 2])
    assert (r.status_code, r.json()["response"]["message"]) == (
        400, "body: must be a JSON object, got an array")
    r = client.post("/v1/track", headers=basic(), json={"anonymousId": "a"})
    assert (r.status_code, r.json()["response"]["message"]) == (422, "event: is required")
    r = client.post("/v1/page", headers=basic(), json={"name": "Home"})
    assert r.status_code == 422
    assert "userId or anonymousId" in r.json()["response"]["message"]
    r = client.post("/v1/track", headers=basic(), content=b"{}" + b" " * 600_000)
    assert r.status_code == 413
    assert r.json()["response"]["message"].startswith("body: at most 512000 bytes")
    assert running.processed() == 0


def test_batch_reports_bad_messages_by_index_and_keeps_the_good(client: httpx.Client,
                                                                running: Running) -> None:
    batch = [
        {"type": "track", "anonymousId": "a", "event": "One"},
        {"type": "track", "anonymousId": "a"},
        {"type": "nope", "anonymousId": "a"},
        {"type": "page", "anonymousId": "a", "name": "Home"},
    ]
    r = client.post("/v1/batch", headers=basic(),
                    json={"batch": batch, "context": {"library": {"name": "test"}}})
    assert r.status_code == 200, r.text
    body = r.json()["response"]
    assert body["accepted"] == 2
    assert body["errors"] == [
        {"index": 1, "problems": ["event: is required"]},
        {"index": 2, "problems": [
            "type: must be one of track, identify, page, screen, alias, group, got 'nope'"]},
    ]
    assert running.processed() == 2
    r = client.post("/v1/batch", headers=basic(), json={"batch": [{"type": "track"}]})
    assert r.status_code == 422 and r.json()["response"]["errors"][0]["index"] == 0
    r = client.post("/v1/batch", headers=basic(), json={"batch": [batch[0]] * 501})
    assert r.status_code == 413
    assert r.json()["response"]["message"] == "batch: at most 500 messages, got 501"
    r = client.post("/v1/batch", headers=basic(), json={"messages": []})
    assert r.status_code == 422 and r.json()["response"]["message"].startswith("batch:")


def deep_json(levels: int) -> str:
    """A value nested `levels` objects deep, as JSON text."""
    return '{"a": ' * levels + "1" + "}" * levels


def depth_problem(field: str) -> str:
    """The problem named for `deep_json` sent as `field.deep` of a message or body."""
    return f"{field}.deep.a.a.a.a.…{MAX_DEPTH - 8} more….a.a: {DEPTH_RULE}"


@pytest.mark.parametrize("levels", [260, 1_000, 50_000])
def test_deep_json_costs_that_message_alone(client: httpx.Client, running: Running,
                                            levels: int) -> None:
    # 260 levels (under 1 KB) was a 500 that stored none of the batch; around 1,000 an
    # uncaught RecursionError.
    deep = ('{"anonymousId": "a", "event": "Deep", "properties": {"deep": ' + deep_json(levels)
            + "}}")
    r = client.post("/v1/track", headers=basic(), content=deep.encode())
    assert (r.status_code, r.json()["response"]["message"]) == (422, depth_problem("properties"))
    good = '{"type": "track", "anonymousId": "a", "event": "Fine"}'
    body = f'{{"batch": [{good}, {{"type": "track", {deep[1:]}, {good}]}}'
    r = client.post("/v1/batch", headers=basic(), content=body.encode())
    assert r.status_code == 200, r.text
    assert r.json()["response"]["accepted"] == 2
    assert r.json()["response"]["errors"] == [
        {"index": 1, "problems": [depth_problem("properties")]}]
    assert running.processed() == 2


def test_numbers_that_are_not_finite_cost_that_message_alone(client: httpx.Client,
                                                             running: Running) -> None:
    # 1e400 overflowed to infinity and was stored as null without a word; a NaN literal made
    # the whole body a 400.
    body = ('{"batch": [{"type": "track", "anonymousId": "a", "event": "E", '
            '"properties": {"total": 1e400}}, {"type": "identify", "anonymousId": "a", '
            '"traits": {"ltv": NaN, "scores": [1, -Infinity]}}, '
            '{"type": "track", "anonymousId": "a", "event": "Fine", "properties": {"x": 1e300}}]}')
    r = client.post("/v1/batch", headers=basic(), content=body.encode())
    assert r.status_code == 200, r.text
    assert r.json()["response"]["errors"] == [
        {"index": 0, "problems": [f"properties.total: {FINITE_RULE}, got inf"]},
        {"index": 1, "problems": [f"traits.ltv: {FINITE_RULE}, got nan",
                                  f"traits.scores.1: {FINITE_RULE}, got -inf"]}]
    assert running.processed() == 1
    r = client.post("/v1/track", headers=basic(),
                    content=b'{"anonymousId": "a", "event": "E", "properties": {"t": Infinity}}')
    assert (r.status_code, r.json()["response"]["message"]) == (
        422, f"properties.t: {FINITE_RULE}, got inf")


@pytest.mark.parametrize("path", ["users", "events"])
def test_user_api_names_deep_and_non_finite_attributes(client: httpx.Client, running: Running,
                                                       path: str) -> None:
    fields = '"name": "E", ' if path == "events" else ""
    for attributes, problem in [
        ('{"deep": ' + deep_json(2_000) + "}", depth_problem("attributes")),
        ('{"ltv": 1e400}', f"attributes.ltv: {FINITE_RULE}, got inf"),
    ]:
        body = f'{{"userId": "u-1", {fields}"attributes": {attributes}}}'
        r = client.post(f"/v1/accounts/shop/{path}", headers=bearer(), content=body.encode())
        assert (r.status_code, r.json()["response"]["message"]) == (422, problem)
    assert running.processed() == 0


def test_group_calls_are_accepted_and_a_bad_one_costs_no_other(client: httpx.Client,
                                                                 running: Running) -> None:
    r = client.post("/v1/group", headers=basic(),
                    json={"userId": "u1", "groupId": "acme", "traits": {"employees": 42}})
    assert r.status_code == 200, r.text
    r = client.post("/v1/batch", headers=basic(), json={"batch": [
        {"type": "group", "userId": "u1", "traits": {"name": "ACME"}},
        {"type": "group", "userId": "u1", "groupId": 7},
        {"type": "track", "userId": "u1", "event": "E"},
    ]})
    assert r.status_code == 200, r.text
    assert r.json()["response"]["accepted"] == 2
    assert r.json()["response"]["errors"] == [{"index": 0, "problems": ["groupId: is required"]}]
    profile = running.show("u1")
    # A group's traits describe the group: they never become the person's attributes.
    assert profile is not None and profile["messages"] == 3
    assert profile["attributes"]["custom"] == {}


def test_user_api_update_becomes_identify_with_traits_and_consent(
    client: httpx.Client, running: Running
) -> None:
    body = {
        "userId": "cust-1", "anonymousId": "ignored-anon", "firstName": "Ann",
        "lastName": "Lee", "birthDate": "1990-05-17T00:00:00+0200", "gender": "female",
        "email": "ann@example.com", "phone": "+4712345678", "emailOptIn": True,
        "smsOptIn": False, "company": "ACME", "hashedEmail": "abc",
        "attributes": {"tier": "gold", "score": 9.5, "vip": True, "tags": ["a"],
                       "address": {"city": "Oslo"}, "since": "2020-01-01"},
    }
    r = client.post("/v1/accounts/shop/users", headers=bearer(), json=body)
    assert r.status_code == 200, r.text
    assert r.json()["response"]["status"] == "queued"
    profile = running.show("cust-1")
    assert profile is not None
    assert "anonymousId" not in profile["identities"]
    system = {k: v["value"] for k, v in profile["attributes"]["system"].items()}
    assert system["firstName"] == "Ann" and system["phone"] == "+4712345678"
    assert profile["attributes"]["system"]["birthDate"]["type"] == "date"
    custom = {k: v["type"] for k, v in profile["attributes"]["custom"].items()}
    assert custom == {"tier": "string", "score": "number", "vip": "boolean", "tags": "array",
                      "address": "object", "since": "date"}
    assert {k: (v["granted"], v["default"]) for k, v in profile["consent"].items()} == {
        "email": (True, False), "sms": (False, False), "whatsapp": (False, True)}
    r = client.post("/v1/accounts/shop/events", headers=bearer("old-key"),
                    json={"userId": "cust-1", "name": "Order Completed",
                          "attributes": {"total": 10}})
    assert r.status_code == 200, r.text
    assert running.show("cust-1")["messages"] == 2  # type: ignore[index]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"firstName": "A"}, 422, "userId or anonymousId: one is required"),
    ({"userId": "x" * 101}, 422, "userId: String should have at most 100 characters"),
    ({"userId": "u", "phone": "12345"}, 422, "phone: must be an E.164 number"),
    ({"userId": "u", "birthDate": "1990-05-17"}, 422,
     "birthDate: must be yyyy-MM-ddTHH:mm:ss±hhmm"),
    ({"userId": "u", "gender": "x"}, 422, "gender: Input should be 'male', 'female' or"),
    ({"userId": "u", "emailOptIn": "yes"}, 422, "emailOptIn: Input should be a valid boolean"),
    ({"userId": "u", "attributes": {"email": "a@b.c"}}, 422,
     "attributes: 'email' is a system attribute; send it as the top-level field"),
    ({"userId": "u", "nickname": "x"}, 422, "nickname: Extra inputs are not permitted"),
    # The Segment endpoints' id rule, and an email is an identity too.
    ({"userId": "a\x00b"}, 422, "userId: must not contain the NUL character (\\u0000)"),
    ({"anonymousId": "\x00"}, 422, "anonymousId: must not contain the NUL character"),
    ({"userId": "u", "email": "a\x00@b.co"}, 422, "email: must not contain the NUL character"),
    # Unlike the Segment endpoints, no number for a string: every field here is strict.
    ({"userId": 42}, 422, "userId: Input should be a valid string"),
])
def test_user_api_field_rules(client: httpx.Client, body: dict[str, Any], status: int,
                              message: str) -> None:
    r = client.post("/v1/accounts/shop/users", headers=bearer(), json=body)
    assert r.status_code == status, r.text
    assert r.json()["response"]["status"] == "error"
    assert r.json()["response"]["message"].startswith(message), r.json()


@pytest.mark.parametrize("field", ["userId", "anonymousId", "messageId", "sessionId"])
def test_user_api_event_ids_may_not_hold_nul(client: httpx.Client, field: str) -> None:
    body = {"userId": "u", "name": "Order Completed", field: "x\x00"}
    r = client.post("/v1/accounts/shop/events", headers=bearer(), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["response"]["message"] == (
        f"{field}: must not contain the NUL character (\\u0000)")


def test_user_api_unknown_account_and_wrong_key(client: httpx.Client) -> None:
    r = client.post("/v1/accounts/nope/users", headers=bearer(), json={"userId": "u"})
    assert (r.status_code, r.json()["response"]["message"]) == (
        404, "account: unknown account 'nope'")
    r = client.post("/v1/accounts/shop/users", headers=bearer(WRITE_KEY), json={"userId": "u"})
    assert (r.status_code, r.json()["response"]["message"]) == (
        401, "authorization: not a key of account 'shop'")


def test_rate_limit_per_key_answers_429_with_retry_after(tmp_path: Path) -> None:
    now = [0.0]
    loaded = loaded_config(tmp_path, rate_limit_per_minute=3)
    with serve(loaded, monotonic=lambda: now[0]) as running, \
            httpx.Client(base_url=running.url) as client:
        message = {"anonymousId": "a", "event": "E"}
        codes = [client.post("/v1/track", headers=basic(), json=message).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 200]
        r = client.post("/v1/track", headers=basic(), json=message)
        assert r.status_code == 429
        # 3 a minute: the next slot opens 20 s after the burst.
        assert r.headers["Retry-After"] == "20"
        # Another key has its own allowance.
        assert client.post("/v1/accounts/shop/events", headers=bearer(),
                           json={"anonymousId": "a", "name": "E"}).status_code == 200
        now[0] = 20.0
        assert client.post("/v1/track", headers=basic(), json=message).status_code == 200
        assert client.post("/v1/track", headers=basic(), json=message).status_code == 429
        assert running.processed() == 5


def test_failed_authentication_is_limited_per_client_address(tmp_path: Path) -> None:
    # 6,000 wrong keys at 638/s all got 401, never 429: keys could be guessed at the speed of
    # the network.
    now = [0.0]
    loaded = loaded_config(tmp_path, auth_failures_per_minute=3)
    message = {"anonymousId": "a", "event": "E"}
    event = {"anonymousId": "a", "name": "E"}
    other_address = httpx.HTTPTransport(local_address="127.0.0.2")
    with serve(loaded, monotonic=lambda: now[0]) as running, \
            httpx.Client(base_url=running.url) as guesser, \
            httpx.Client(base_url=running.url, transport=other_address) as neighbour:
        codes = [guesser.post("/v1/track", headers=basic(f"guess-{i}"), json=message).status_code
                 for i in range(3)]
        assert codes == [401, 401, 401]
        # The write-key endpoints and the user API (a wrong key, an unknown account) count
        # together; past the limit the key is not even looked at, so the right one is refused
        # too and a guesser learns nothing sooner.
        for path, headers in [("/v1/track", basic("guess-3")), ("/v1/track", basic()),
                              ("/v1/accounts/shop/events", bearer("guess-4")),
                              ("/v1/accounts/nope/events", bearer()),
                              ("/v1/accounts/shop/events", bearer())]:
            r = guesser.post(path, headers=headers, json=event if "accounts" in path else message)
            assert r.status_code == 429, (path, r.text)
            assert r.headers["Retry-After"] == "20"  # 3 a minute: a slot every 20 s
            assert r.json()["response"]["message"] == (
                "authorization: more than 3 failed attempts a minute from this address; "
                "retry after the Retry-After seconds")
        # Good keys from another address are not affected, nor are its own failures counted
        # against the first.
        assert neighbour.post("/v1/track", headers=basic(), json=message).status_code == 200
        assert neighbour.post("/v1/accounts/shop/events", headers=bearer(),
                              json=event).status_code == 200
        assert neighbour.post("/v1/track", headers=basic("nope"), json=message).status_code == 401
        now[0] = 20.0
        assert guesser.post("/v1/track", headers=basic(), json=message).status_code == 200
        assert guesser.post("/v1/track", headers=basic("guess-5"),
                            json=message).status_code == 401
        assert guesser.post("/v1/track", headers=basic(), json=message).status_code == 429
        metrics = guesser.get("/metrics").text
        assert "crossdock_collector_auth_failures_total 5" in metrics
        assert running.processed() == 3


def test_repeated_request_ids_are_processed_once_across_a_restart(tmp_path: Path) -> None:
    loaded = loaded_config(tmp_path)
    unique = [f"req-{i}" for i in range(800)]
    # 1,000 requests: 800 distinct ids, 200 of them sent twice, some twice after a restart.
    before = unique[:400] + unique[:100]
    after = unique[400:] + unique[100:150] + unique[400:450]
    assert len(before) + len(after) == 1000
    answers: list[dict[str, Any]] = []

    def send_all(running: Running, ids: list[str]) -> None:
        with httpx.Client(base_url=running.url, headers=basic()) as client:
            for i, request_id in enumerate(ids):
                # No messageId: each copy is a new message, only x-request-id ties them.
                r = client.post("/v1/track", headers={"x-request-id": request_id},
                                json={"anonymousId": f"anon-{i % 7}", "event": "E"})
                assert r.status_code == 200, r.text
                answers.append(r.json()["response"])

    with serve(loaded) as running:
        send_all(running, before)
        assert running.processed() == 400
    with serve(loaded) as running:  # a new process on the same file
        send_all(running, after)
        assert running.processed() == 800
    assert sum(a["accepted"] for a in answers) == 800
    assert sum(a["duplicates"] for a in answers) == 200


def test_request_ids_expire_after_the_dedup_window(tmp_path: Path) -> None:
    now = [START]
    with serve(loaded_config(tmp_path), clock=lambda: now[0]) as running, \
            httpx.Client(base_url=running.url, headers=basic()) as client:
        def send() -> int:
            r = client.post("/v1/track", headers={"x-request-id": "same"},
                            json={"anonymousId": "a", "event": "E"})
            return int(r.json()["response"]["accepted"])

        assert send() == 1
        now[0] += 4 * 3600 - 1
        assert send() == 0
        now[0] += 1
        assert send() == 1


#: two webhook destinations nothing delivers for
TWO_HOOKS = {name: {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
                    "delivery": {"allow_private_network": True}}
             for name in ("warehouse", "crm")}


def test_metrics_give_each_destinations_delivery_lag(tmp_path: Path) -> None:
    with serve(loaded_config(tmp_path, TWO_HOOKS), clock=time.time) as running, \
            httpx.Client(base_url=running.url, headers=basic()) as client:
        def lags() -> dict[str, float]:
            found = {}
            for line in client.get("/metrics").text.splitlines():
                if line.startswith("crossdock_outbox_oldest_waiting_seconds{"):
                    labels, value = line.rsplit(" ", 1)
                    found[labels.split('"')[1]] = float(value)
            return found

        assert client.post("/v1/track", json={"userId": "u", "event": "E"}).status_code == 200
        time.sleep(0.05)
        # Nothing delivers here: the accepted rows wait, and the lag says how long.
        assert all(0.05 <= lag < 60 for lag in lags().values()) and len(lags()) == 2
        for item in running.outbox.lease("crm", 10, 60, "test"):
            running.outbox.ack([item.id], "test")
        assert lags()["crm"] == 0.0 and lags()["warehouse"] > 0


def test_metrics_give_each_destinations_circuit(tmp_path: Path) -> None:
    with serve(loaded_config(tmp_path, TWO_HOOKS), clock=time.time) as running, \
            httpx.Client(base_url=running.url, headers=basic()) as client:
        assert client.post("/v1/track", json={"userId": "u", "event": "E"}).status_code == 200
        closed = running.outbox.circuit("crm")
        assert running.outbox.swap_circuit(closed, replace(
            closed, state="open", failures=7, opened_at=START, next_probe_at=START + 10))
        lines = set(client.get("/metrics").text.splitlines())
    assert 'crossdock_circuit_state{destination="crm",state="open"} 1' in lines
    assert 'crossdock_circuit_state{destination="crm",state="closed"} 0' in lines
    assert 'crossdock_circuit_state{destination="warehouse",state="closed"} 1' in lines
    assert 'crossdock_circuit_failures{destination="crm"} 7' in lines
    assert "# TYPE crossdock_circuit_state gauge" in lines


def test_healthz_metrics_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/identify", headers=basic(), json={"userId": "u", "traits": {"a": 1}})
    client.post("/v1/identify", headers=basic(), json={"userId": "u", "traits": {"a": "x"}})
    client.post("/v1/track", headers=basic(), json={"userId": "u"})
    text = client.get("/metrics").text
    lines = set(text.splitlines())
    assert 'crossdock_collector_messages_total{outcome="accepted"} 2' in lines
    assert 'crossdock_collector_messages_total{outcome="bad"} 1' in lines
    assert 'crossdock_profiles{kind="known"} 1' in lines
    assert 'crossdock_attribute_problems_total{rule="type"} 1' in lines
    assert 'crossdock_collector_requests_total{endpoint="/v1/identify",status="200"} 2' in lines
    assert "# TYPE crossdock_collector_requests_total counter" in lines
    spec = client.get("/openapi.json").json()
    assert {"/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/alias", "/v1/batch",
            "/v1/accounts/{account}/users", "/v1/accounts/{account}/events", "/healthz",
            "/metrics"} <= set(spec["paths"])
    assert "UserUpdate" in spec["components"]["schemas"]


def test_user_api_takes_its_key_as_a_bearer_token_only(client: httpx.Client) -> None:
    # Basic auth with a right key of the account is refused, as the docs and the 401 say.
    r = client.post("/v1/accounts/shop/users", headers=basic(SHOP_KEY), json={"userId": "u"})
    assert r.status_code == 401, r.text
    assert r.json()["response"]["message"] == (
        "authorization: send a key of account 'shop' as 'Authorization: Bearer <key>' "
        "(got 'Basic' auth)")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="crossdock"'
    r = client.post("/v1/accounts/shop/users", json={"userId": "u"})
    assert (r.status_code, r.headers["WWW-Authenticate"]) == (401, 'Bearer realm="crossdock"')
    assert client.post("/v1/accounts/shop/users", headers=bearer(),
                       json={"userId": "u"}).status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["paths"]["/v1/accounts/{account}/users"]["post"]["security"] == [{"bearer": []}]


def test_an_over_long_system_attribute_is_truncated_on_every_entry_point(
    client: httpx.Client, running: Running
) -> None:
    # The user API used to answer 422 for a firstName a Segment identify had truncated.
    r = client.post("/v1/accounts/shop/users", headers=bearer(),
                    json={"userId": "long-1", "firstName": "A" * 1500, "company": "C" * 1001,
                          "attributes": {"bio": "b" * 2000}})
    assert r.status_code == 200, r.text
    r = client.post("/v1/identify", headers=basic(),
                    json={"userId": "long-2", "traits": {"firstName": "A" * 1500}})
    assert r.status_code == 200, r.text
    for user in ("long-1", "long-2"):
        profile = running.show(user)
        assert profile is not None
        assert profile["attributes"]["system"]["firstName"]["value"] == "A" * 1000
        assert ("firstName", "truncated") in {(p["attribute"], p["rule"])
                                              for p in profile["rejections"]}
    profile = running.show("long-1")
    assert profile is not None
    assert len(profile["attributes"]["system"]["company"]["value"]) == 1000
    assert len(profile["attributes"]["custom"]["bio"]["value"]) == 1000


def test_null_removes_an_attribute_through_the_user_api_and_identify(
    client: httpx.Client, running: Running
) -> None:
    r = client.post("/v1/accounts/shop/users", headers=bearer(),
                    json={"userId": "n-1", "firstName": "Ann", "lastName": "Lee",
                          "attributes": {"plan": "pro", "tier": "gold"}})
    assert r.status_code == 200, r.text
    r = client.post("/v1/accounts/shop/users", headers=bearer(),
                    json={"userId": "n-1", "firstName": None, "attributes": {"plan": None}})
    assert r.status_code == 200, r.text
    profile = running.show("n-1")
    assert profile is not None
    assert set(profile["attributes"]["system"]) == {"lastName"}  # left out: kept
    assert set(profile["attributes"]["custom"]) == {"tier"}
    r = client.post("/v1/identify", headers=basic(),
                    json={"userId": "n-1", "traits": {"lastName": None, "tier": None}})
    assert r.status_code == 200, r.text
    profile = running.show("n-1")
    assert profile is not None and profile["attributes"] == {"system": {}, "custom": {}}


def test_a_reserved_attribute_name_is_ignored_and_the_rest_of_the_update_kept(
    client: httpx.Client, running: Running
) -> None:
    r = client.post("/v1/accounts/shop/users", headers=bearer(),
                    json={"userId": "r-1", "firstName": "Ann",
                          "attributes": {"we_segment": "vip", "tier": "gold"}})
    assert r.status_code == 200, r.text
    profile = running.show("r-1")
    assert profile is not None
    assert set(profile["attributes"]["custom"]) == {"tier"}
    assert profile["attributes"]["system"]["firstName"]["value"] == "Ann"
    assert [(p["attribute"], p["rule"]) for p in profile["rejections"]] == [
        ("we_segment", "reserved_prefix")]
    assert 'crossdock_attribute_problems_total{rule="reserved_prefix"} 1' in client.get(
        "/metrics").text
