"""SessionM build_requests (pure), classify, settings and config warnings."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.destination import DELIVERED, Failed, OutboxItem, PlannedRequest, Rejected, Retry
from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.plugin_manager import destination_types
from crossdock.plugins.sessionm import SessionMDestination, SessionMSettings
from crossdock.testing.payloads import routed_payload

BASE = "https://api.sessionm.com/priv/v1/apps/key-1"


def dest(**settings: Any) -> SessionMDestination:
    return SessionMDestination(SessionMSettings.model_validate(
        {"api_key": "key-1", "api_secret": "secret-1", **settings}))


def routed(kind: str = "track", **extra: Any) -> OutboxItem:
    payload = routed_payload(**{
        "type": kind, "messageId": "m1", "userId": "u1", "profileId": "p_1",
        "event": "Order Completed" if kind == "track" else "Home",
        "properties": {"total": "42.5"}, "traits": {"first_name": "Ada", "plan": "pro"},
        "identities": {"profileId": "p_1", "email": "ada@example.com"}, **extra})
    return OutboxItem(1, "m1", payload)


def one(destination: SessionMDestination, item: OutboxItem) -> httpx.Request:
    (planned,) = destination.build_requests([item])
    assert isinstance(planned, PlannedRequest)
    return planned.request


def test_registered_through_the_entry_point() -> None:
    assert destination_types()["sessionm"] is SessionMDestination


def test_an_event_is_one_post_with_the_user_and_basic_auth() -> None:
    request = one(dest(), routed())
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/external/users/p_1/events")
    token = base64.b64encode(b"key-1:secret-1").decode()
    assert request.headers["authorization"] == f"Basic {token}"
    assert json.loads(request.content) == {
        "user": {"external_id": "p_1", "external_id_type": "crossdock", "first_name": "Ada",
                 "user_profile": {"plan": "pro"},
                 "identifiers": [{"external_id_type": "email",
                                  "external_id": "ada@example.com"}]},
        "event": {"name": "Order Completed", "type": "custom", "attributes": {"total": "42.5"},
                  "message_id": "m1", "occurred_at": "2024-05-01T12:00:00+00:00"},
    }


@pytest.mark.parametrize(("kind", "method", "path", "event_type"), [
    ("track", "POST", "/external/users/p_1/events", "custom"),
    ("screen", "POST", "/external/users/p_1/events", "screen_view"),
    ("identify", "PUT", "/external/users/p_1", None),
])
def test_each_message_type_has_its_request(
    kind: str, method: str, path: str, event_type: str | None
) -> None:
    request = one(dest(host="http://127.0.0.1:9/"), routed(kind))
    assert request.method == method
    assert str(request.url) == "http://127.0.0.1:9/priv/v1/apps/key-1" + path
    body = json.loads(request.content)
    assert body.get("event", {}).get("type") == event_type


def test_values_the_mapping_left_unstringified_are_still_sent_as_strings() -> None:
    item = routed(properties={"n": 3, "ok": True, "gone": None}, traits={"age": 40})
    body = json.loads(one(dest(), item).content)
    assert body["event"]["attributes"] == {"n": "3", "ok": "true"}
    assert body["user"]["user_profile"] == {"age": "40"}


def test_a_profile_id_with_slashes_stays_one_path_segment() -> None:
    request = one(dest(), routed("identify", profileId="a/b c"))
    assert request.url.raw_path.decode().endswith("/external/users/a%2Fb%20c")


@pytest.mark.parametrize(("extra", "reason"), [
    ({"profileId": None}, "profileId: missing"),
    ({"type": "alias"}, "type: 'alias' is not forwarded to SessionM"),
    ({"type": "page"}, "type: 'page' is not forwarded to SessionM"),
    ({"event": ""}, "event: missing"),
])
def test_items_that_cannot_be_sent_are_rejected_alone(extra: dict[str, Any], reason: str) -> None:
    bad = routed(**extra)
    good = OutboxItem(2, "m2", routed().payload)
    out = dest().build_requests([bad, good])
    assert isinstance(out[0], Rejected) and out[0].reason.startswith(reason)
    assert isinstance(out[1], PlannedRequest) and out[1].items == [good]


def test_settings_event_names_rename_the_routed_name() -> None:
    body = json.loads(one(dest(event_names={"Order Completed": "purchase"}), routed()).content)
    assert body["event"]["name"] == "purchase"


def response(status: int, body: Any = None, headers: dict[str, str] | None = None
             ) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    return httpx.Response(status, content=content.encode(), headers=headers or {})


def error(code: str, message: str | None = None) -> dict[str, Any]:
    errors: dict[str, Any] = {"code": code}
    if message:
        errors["message"] = message
    return {"status": "error", "errors": errors}


@pytest.mark.parametrize(("reply", "outcome"), [
    (response(200, {"status": "ok"}), DELIVERED),
    (response(200, error("INTERNAL_SERVER_ERROR")), Retry("SessionM INTERNAL_SERVER_ERROR")),
    (response(200, error("INTERNAL_SERVER_ERROR"), {"Retry-After": "7"}),
     Retry("SessionM INTERNAL_SERVER_ERROR", 7.0)),
    (response(200, error("USER_NOT_FOUND", "who?")), Failed("SessionM USER_NOT_FOUND: who?")),
    (response(200, error("INVALID_API_KEY")), Failed("SessionM INVALID_API_KEY")),
    (response(200, error("REQUIRES_REGISTERED_USER")),
     Failed("SessionM REQUIRES_REGISTERED_USER")),
    (response(200, error("MISSING_DATA")), Failed("SessionM MISSING_DATA")),
    (response(200, error("VALIDATION", "bad")), Failed("SessionM VALIDATION: bad")),
    (response(200, {"status": "error", "errors": ["x"]}), Failed('SessionM UNKNOWN: ["x"]')),
    (response(200, "<html>proxy</html>"),
     Retry("HTTP 200 without a SessionM status: <html>proxy</html>")),
    (response(500, "boom"), Retry("HTTP 500: boom")),
    (response(503, error("INTERNAL_SERVER_ERROR")),
     Retry("HTTP 503: SessionM INTERNAL_SERVER_ERROR")),
    (response(401, error("INVALID_API_KEY", "no")),
     Failed("bad credentials (HTTP 401): INVALID_API_KEY: no")),
    (response(403, "forbidden"), Failed("bad credentials (HTTP 403): forbidden")),
    (response(400, error("VALIDATION")), Failed("HTTP 400: SessionM VALIDATION")),
    (response(404, "nope"), Failed("HTTP 404: nope")),
], ids=lambda v: None)
def test_classify(reply: httpx.Response, outcome: Any) -> None:
    destination = dest()
    planned = PlannedRequest(one(destination, routed()), [routed()])
    assert destination.classify(planned, reply) == outcome


@pytest.mark.parametrize(("settings", "problem"), [
    ({"api_secret": "s"}, "settings.api_key: is required"),
    ({"api_key": "k"}, "settings.api_secret: is required"),
    ({"api_key": "k/../x", "api_secret": "s"}, "settings.api_key: may contain only"),
    ({"api_key": "k", "api_secret": ""}, "settings.api_secret: must not be empty"),
    ({"api_key": "k", "api_secret": "s", "host": "not a url"}, "settings.host:"),
    ({"api_key": "k", "api_secret": "s", "event_names": {"A": " "}},
     "settings.event_names: names must not be empty"),
    ({"api_key": "k", "api_secret": "s", "nope": 1}, "settings.nope:"),
])
def test_bad_settings_name_the_field(
    tmp_path: Path, settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"destinations": {"sm": {"plugin": "sessionm", "settings": settings}}},
                     base_dir=tmp_path, env={})
    assert any(p.startswith(f"destinations.sm.{problem}") for p in caught.value.problems), (
        caught.value.problems)


@pytest.mark.parametrize(("destination", "expected"), [
    ({}, ["filter enables nothing"]),
    ({"filter": {"identities": {"allow": ["email"]}}}, []),
    ({"mapping": {"forward_by_default": True}}, []),
    ({"filter": {"events": {"allow": ["A"]}}, "mapping": {"limits": {"event_attributes": 20}}},
     ["limits.event_attributes is 20"]),
    ({"filter": {"events": {"allow": ["A"]}}, "mapping": {"limits": {"user_attributes": 500}}},
     ["limits.user_attributes is 500"]),
    ({"filter": {"user_attributes": {"allow": ["$LastName"]}}}, []),
    ({"filter": {"user_attributes": {"allow": ["$LastName", "lastName"]}}}, []),
    ({"filter": {"events": {"allow": ["A"]}}, "mapping": {"event_names": {"A": "B"}},
      "settings": {"event_names": {"A": "C"}}},
     ["settings.event_names.A never applies: mapping.event_names renames 'A' to 'B' first"]),
], ids=["nothing enabled", "identities only", "forward everything", "event limit",
        "user limit", "$ name", "$ name and stored name", "shadowed event name"])
def test_config_warnings(tmp_path: Path, destination: dict[str, Any], expected: list[str]
                         ) -> None:
    settings = {"api_key": "k", "api_secret": "s", **destination.pop("settings", {})}
    loaded = parse_config({"destinations": {"sm": {
        "plugin": "sessionm", "settings": settings, **destination}}}, base_dir=tmp_path, env={})
    assert len(loaded.warnings) == len(expected), loaded.warnings
    for warning, fragment in zip(loaded.warnings, expected, strict=True):
        assert warning.startswith("destinations.sm: ") and fragment in warning
