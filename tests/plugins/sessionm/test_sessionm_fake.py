"""The SessionM contract fake over real HTTP: it refuses what SessionM refuses."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sessionm_helpers import API_KEY, API_SECRET

from crossdock.plugins.sessionm.fake import SessionMFake
from crossdock.testing.fakeserver import RunningServer, fake_process

AUTH = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
USER = f"/priv/v1/apps/{API_KEY}/external/users/p_1"


def call(server: RunningServer, method: str, path: str, body: Any = None,
         auth: str | None = AUTH) -> httpx.Response:
    headers = {"authorization": auth} if auth else {}
    return httpx.request(method, server.url + path, json=body, headers=headers, timeout=10)


def event(name: str = "Home", attributes: dict[str, Any] | None = None,
          **extra: Any) -> dict[str, Any]:
    return {"user": {"external_id": "p_1"},
            "event": {"name": name, "type": "custom", "attributes": attributes or {}},
            **extra}


def test_upsert_then_read_a_user(server: RunningServer) -> None:
    first = call(server, "PUT", USER, {"user": {"first_name": "Ada",
                                                "user_profile": {"plan": "pro"}}})
    assert first.status_code == 200 and first.json()["status"] == "ok"
    call(server, "PUT", USER, {"user": {"user_profile": {"tier": "gold"}, "identifiers": [
        {"external_id_type": "email", "external_id": "a@x.io"}]}})
    user = call(server, "GET", USER).json()["user"]
    assert user["first_name"] == "Ada"
    assert user["user_profile"] == {"plan": "pro", "tier": "gold"}
    assert user["identifiers"] == {"email": "a@x.io"}


@pytest.mark.parametrize(("method", "path", "body", "auth", "status", "code"), [
    ("PUT", USER, {"user": {}}, None, 401, "INVALID_API_KEY"),
    ("PUT", USER, {"user": {}}, "Basic !!!", 401, "INVALID_API_KEY"),
    ("PUT", USER, {"user": {}}, "Basic " + base64.b64encode(b"app-key-1:nope").decode(),
     200, "INVALID_API_KEY"),
    ("PUT", USER.replace(API_KEY, "other"), {"user": {}}, AUTH, 200, "INVALID_API_KEY"),
    ("PUT", USER, ["not", "an object"], AUTH, 200, "MISSING_DATA"),
    ("PUT", USER, {"nope": 1}, AUTH, 200, "MISSING_DATA"),
    ("PUT", USER, {"user": {"first_name": 1}}, AUTH, 200, "VALIDATION"),
    ("PUT", USER, {"user": {"user_profile": {"n": 1}}}, AUTH, 200, "VALIDATION"),
    ("PUT", USER, {"user": {"user_profile": {f"a{i}": "v" for i in range(201)}}}, AUTH, 200,
     "VALIDATION"),
    ("PUT", USER, {"user": {"identifiers": [{"external_id_type": "email"}]}}, AUTH, 200,
     "VALIDATION"),
    ("GET", USER, None, AUTH, 200, "USER_NOT_FOUND"),
    ("POST", USER + "/events", event("Undefined Event"), AUTH, 200, "VALIDATION"),
    ("POST", USER + "/events", event(attributes={f"a{i}": "v" for i in range(11)}), AUTH, 200,
     "VALIDATION"),
    ("POST", USER + "/events", event(attributes={"n": 1}), AUTH, 200, "VALIDATION"),
    ("POST", USER + "/events", {"event": {"name": "Home", "type": "custom"}}, AUTH, 200,
     "USER_NOT_FOUND"),
    ("POST", USER + "/events", {"user": {}}, AUTH, 200, "MISSING_DATA"),
    ("POST", USER + "/events", {"user": {}, "event": {"name": "Home", "type": "x"}}, AUTH,
     200, "VALIDATION"),
], ids=["no auth", "unreadable auth", "wrong secret", "other app", "not an object",
        "no user", "non-string field", "non-string attribute", "201 user attributes",
        "bad identifier", "unknown user", "undefined event", "11 event attributes",
        "non-string event attribute", "event for unknown user without a user block",
        "no event", "bad event type"])
def test_refusals(server: RunningServer, fake: SessionMFake, method: str, path: str,
                  body: Any, auth: str | None, status: int, code: str) -> None:
    reply = call(server, method, path, body, auth)
    assert reply.status_code == status
    assert reply.json()["status"] == "error" and reply.json()["errors"]["code"] == code
    assert fake.refusals() == [code]
    assert fake.events == []
    if method == "PUT" and status == 200 and code != "INVALID_API_KEY":
        assert fake.users == {}  # a refused upsert leaves nothing behind


def test_an_event_with_a_user_block_creates_the_user(server: RunningServer,
                                                    fake: SessionMFake) -> None:
    reply = call(server, "POST", USER + "/events", event(attributes={"a": "1"}))
    assert reply.json()["status"] == "ok"
    assert fake.users["p_1"]["id"] == fake.events[0]["user_id"]
    # Later events may leave the user block out once the user exists.
    again = call(server, "POST", USER + "/events",
                 {"event": {"name": "purchase", "type": "screen_view"}})
    assert again.json()["status"] == "ok" and len(fake.events) == 2


def test_scripted_errors_and_replies_then_normal_service(server: RunningServer,
                                                        fake: SessionMFake) -> None:
    fake.script_errors(["INTERNAL_SERVER_ERROR"])
    fake.script([503])
    assert call(server, "PUT", USER, {"user": {}}).status_code == 503
    reply = call(server, "PUT", USER, {"user": {}})
    assert reply.json()["errors"]["code"] == "INTERNAL_SERVER_ERROR"
    assert call(server, "PUT", USER, {"user": {}}).json()["status"] == "ok"
    received = httpx.get(server.url + "/_fake/received").json()
    assert [r["code"] for r in received["received"]] == [
        "HTTP 503", "INTERNAL_SERVER_ERROR", None]
    assert list(received["users"]) == ["p_1"]
    httpx.post(server.url + "/_fake/script", json={"reset": True})
    assert httpx.get(server.url + "/_fake/received").json()["users"] == {}


def test_runs_standalone() -> None:
    with fake_process("crossdock.plugins.sessionm.fake", "--api-key", "k", "--api-secret", "s",
                      "--events", "A, B") as running:
        assert running.banner.startswith(f"SessionM fake on {running.url}/ (app k;")
        auth = "Basic " + base64.b64encode(b"k:s").decode()
        reply = httpx.post(f"{running.url}/priv/v1/apps/k/external/users/x/events",
                           headers={"authorization": auth},
                           json={"user": {}, "event": {"name": "B", "type": "custom"}})
        assert reply.json()["status"] == "ok"
        received = httpx.get(running.url + "/_fake/received").json()
        assert [e["name"] for e in received["events"]] == ["B"]
