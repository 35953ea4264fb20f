"""Every forwarding rule of the SessionM integration, one table each, through the whole
pipeline: accept -> profile store -> route (mappings/sessionm.yaml) -> SQLite outbox ->
delivery -> the SessionM contract fake on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sessionm_helpers import OPEN_FILTER, Harness

IDENTIFY = {"type": "identify", "userId": "u1", "messageId": "m-identify",
            "traits": {"plan": "pro", "email": "ada@example.com"}}
TRACK = {"type": "track", "userId": "u1", "messageId": "m-track", "event": "Order Completed",
         "properties": {"total": 42.5, "currency": "EUR"}}
SCREEN = {"type": "screen", "userId": "u1", "messageId": "m-screen", "name": "Home",
          "properties": {"tab": "main"}}
PAGE = {"type": "page", "userId": "u1", "messageId": "m-page", "name": "Home"}


def track(properties: dict[str, Any], event: str = "Order Completed", **extra: Any
          ) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": event, "properties": properties, **extra}


def identify(traits: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": "u1", "traits": traits, **extra}


def shapes(received: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """Each accepted request as (method, what, body) with the person's id written <pid>."""
    out = []
    for entry in received:
        pid = entry["path"].split("/external/users/")[1].split("/")[0]
        what = "events" if entry["path"].endswith("/events") else "user"
        body = json.loads(json.dumps(entry["body"]).replace(pid, "<pid>"))
        body.get("event", {}).pop("occurred_at", None)
        out.append((entry["method"], what, body))
    return out


USER = {"external_id": "<pid>", "external_id_type": "crossdock"}


# -- nothing is forwarded until the filter enables it ---------------------------------------

@pytest.mark.parametrize("filt", [
    None,
    {},
    {"events": {"allow": []}, "event_attributes": {"allow": []},
     "user_attributes": {"allow": []}, "identities": {"allow": []}},
    {"events": {"deny": ["Order Completed"]}, "user_attributes": {"deny": ["plan"]}},
], ids=["no filter", "empty filter", "empty allow lists", "deny lists only"])
async def test_a_filter_enabling_nothing_sends_nothing_and_warns(
    harness: Harness, filt: dict[str, Any] | None
) -> None:
    run = await harness.run([IDENTIFY, TRACK, SCREEN], filter=filt)
    assert len(run.accepted.accepted) == 3 and not run.accepted.errors
    assert run.rows == [] and run.received == []
    assert any("filter enables nothing" in w for w in run.loaded.warnings)


def test_crossdock_validate_prints_the_warning(harness: Harness, tmp_path: Path) -> None:
    config = harness.config()
    path = tmp_path / "crossdock.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "crossdock.cli", "validate", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "destinations.sessionm: filter enables nothing" in done.stderr
    path.write_text(yaml.safe_dump(harness.config(filter={"events": {"allow": ["Home"]}})))
    done = subprocess.run([sys.executable, "-m", "crossdock.cli", "validate", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "enables nothing" not in done.stderr


@pytest.mark.parametrize(("filt", "expected"), [
    ({"events": {"allow": ["Order Completed"]}},
     [("POST", "events", {"user": USER, "event": {
         "name": "Order Completed", "type": "custom", "attributes": {},
         "message_id": "m-track"}})]),
    ({"events": {"allow": ["Home"]}},
     [("POST", "events", {"user": USER, "event": {
         "name": "Home", "type": "screen_view", "attributes": {}, "message_id": "m-screen"}})]),
    # Event attributes alone enable nothing visible: their events still need enabling.
    ({"event_attributes": {"allow": ["total"]}}, []),
    ({"events": {"allow": ["Order Completed"]}, "event_attributes": {"allow": ["total"]}},
     [("POST", "events", {"user": USER, "event": {
         "name": "Order Completed", "type": "custom", "attributes": {"total": "42.5"},
         "message_id": "m-track"}})]),
    ({"user_attributes": {"allow": ["plan"]}},
     [("PUT", "user", {"user": {**USER, "user_profile": {"plan": "pro"}}})]),
    ({"identities": {"allow": ["email"]}},
     [("PUT", "user", {"user": {**USER, "identifiers": [
         {"external_id_type": "email", "external_id": "ada@example.com"}]}})]),
], ids=["events: track", "events: screen", "event attributes alone",
        "events and one attribute", "user attributes", "identities"])
async def test_each_category_is_enabled_on_its_own(
    harness: Harness, filt: dict[str, Any], expected: list[Any]
) -> None:
    run = await harness.run([IDENTIFY, TRACK, SCREEN, PAGE], filter=filt)
    assert shapes(run.received) == expected
    assert not any("filter enables nothing" in w for w in run.loaded.warnings)
    assert run.report.delivered == len(expected) and run.report.dead == 0


# -- limits --------------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "kept", "dropped"), [
    (9, 9, 0), (10, 10, 0), (11, 10, 1), (25, 10, 15),
])
async def test_at_most_10_event_attributes_the_first_by_sorted_name(
    harness: Harness, count: int, kept: int, dropped: int
) -> None:
    properties = {f"attr {n:02d}": n for n in reversed(range(count))}
    run = await harness.run([track(properties)], filter=OPEN_FILTER)
    (event,) = run.events
    assert sorted(event["attributes"]) == [f"attr_{n:02d}" for n in range(kept)]
    assert run.dropped_attributes == dropped  # what `crossdock status` shows
    assert run.report.delivered == 1


async def test_more_than_10_event_attributes_are_refused_by_sessionm(harness: Harness) -> None:
    # An operator lifting the limit sees SessionM's refusal in the dead letters.
    run = await harness.run([track({f"a{n}": n for n in range(11)})], filter=OPEN_FILTER,
                            mapping={"limits": {"event_attributes": 11}})
    assert run.report.dead == 1 and run.events == []
    assert run.rows[0]["state"] == "dead"
    assert "SessionM VALIDATION: event.attributes: at most 10, got 11" in run.rows[0]["last_error"]
    assert any("limits.event_attributes is 11" in w for w in run.loaded.warnings)


@pytest.mark.parametrize(("count", "limit", "kept", "dropped", "delivered"), [
    (200, None, 200, 0, True),
    (201, None, 200, 1, True),
    (230, None, 200, 30, True),
    (201, 250, 201, 0, False),  # the limit lifted: SessionM refuses
])
async def test_at_most_200_user_attributes(
    harness: Harness, count: int, limit: int | None, kept: int, dropped: int, delivered: bool
) -> None:
    traits = {f"trait{n:03d}": "v" for n in range(count)}
    mapping = {"limits": {"user_attributes": limit}} if limit else None
    run = await harness.run([identify(traits)], filter=OPEN_FILTER, mapping=mapping,
                            profiles={"attributes": {"max_custom_per_type": 300}})
    assert run.dropped_attributes == dropped
    (entry,) = run.received
    assert len(entry["body"]["user"]["user_profile"]) == kept
    if delivered:
        assert run.report.delivered == 1
        assert sorted(entry["body"]["user"]["user_profile"]) == [
            f"trait{n:03d}" for n in range(200)]
    else:
        assert run.report.dead == 1
        assert "user.user_profile: at most 200 attributes, got 201" in run.rows[0]["last_error"]


# -- values, keys, reserved names ----------------------------------------------------------

@pytest.mark.parametrize(("value", "sent"), [
    ("text", "text"), (42, "42"), (4.5, "4.5"), (3.0, "3"), (True, "true"), (False, "false"),
    ([1, "a"], '[1,"a"]'), ({"k": 1}, '{"k":1}'), (None, None),
])
async def test_every_value_is_sent_as_a_string(
    harness: Harness, value: Any, sent: str | None
) -> None:
    run = await harness.run([identify({"attr": value}), track({"attr": value, "other": "x"})],
                            filter=OPEN_FILTER)
    # Even when the value is null the identify goes out: it carries the enabled identities.
    assert run.report.delivered == 2
    (event,) = run.events
    assert event["attributes"].get("attr") == sent
    assert all(isinstance(v, str) for v in event["attributes"].values())
    for user in run.users:
        assert user.get("user_profile", {}).get("attr") == sent


@pytest.mark.parametrize(("key", "case", "expected"), [
    ("plan-type", "none", "plan_type"),
    ("a b.c/d", "none", "a_b_c_d"),
    ("__score", "none", "score"),
    ("_x-y", "none", "x_y"),
    ("--Mixed Case--", "none", "Mixed_Case__"),
    ("Total Price", "snake", "total_price"),
    ("orderTotal", "lower", "ordertotal"),
    ("order total", "camel", "orderTotal"),
    ("order-total", "pascal", "OrderTotal"),
    ("plan", "upper", "PLAN"),
    ("---", "none", None),  # nothing left: dropped and counted
])
async def test_keys_are_normalized_then_cased(
    harness: Harness, key: str, case: str, expected: str | None
) -> None:
    run = await harness.run([identify({key: "v"}), track({key: "v", "keep": "k"})],
                            filter=OPEN_FILTER, mapping={"keys": {"case": case}})
    (event,) = run.events
    names = set(event["attributes"]) - {"keep", "KEEP", "Keep"}
    assert names == ({expected} if expected else set())
    if expected is None:
        # The user attribute on the identify, and on the event both the event attribute and
        # the user attribute it carries.
        assert run.dropped_attributes == 3
    else:
        assert run.users[0]["user_profile"] == {expected: "v"}


RESERVED = [
    ("$FirstName", "firstName", "first_name", "Ada"),
    ("$LastName", "lastName", "last_name", "Lovelace"),
    ("$Gender", "gender", "gender", "female"),
    ("$Country", "country", "country", "GB"),
    ("$State", "state", "state", "London"),
    ("$City", "city", "city", "London"),
    ("$Zip", "zip", "zip", "N1 9GU"),
    ("$Address", "address", "address", "12 St James's Square"),
]


@pytest.mark.parametrize(("reserved", "stored", "field", "value"), RESERVED,
                         ids=[r[0] for r in RESERVED])
@pytest.mark.parametrize("case", ["none", "upper"])
async def test_reserved_attributes_become_sessionm_user_fields(
    harness: Harness, reserved: str, stored: str, field: str, value: str, case: str
) -> None:
    # The profile store keeps $FirstName as firstName: the filter names the stored name.
    run = await harness.run(
        [identify({reserved: value, "plan": "pro"}), TRACK],
        filter={**OPEN_FILTER, "user_attributes": {"allow": [stored, "plan"]}},
        mapping={"keys": {"case": case}},
    )
    assert run.report.delivered == 2
    for user in run.users:  # on the identify and on the event alike
        assert user[field] == value
        assert user["user_profile"] == {"PLAN" if case == "upper" else "plan": "pro"}


async def test_a_filter_may_name_the_dollar_attributes_operators_type(harness: Harness) -> None:
    # The mParticle names in the allow list let every one of them through (the profile keeps
    # them as firstName, zip, ...); once nothing passed and validate warned about some.
    names = [r[0] for r in RESERVED]
    assert harness.load(filter={"user_attributes": {"allow": names}}).warnings == []
    run = await harness.run(
        [identify({r[0]: r[3] for r in RESERVED} | {"plan": "pro"})],
        filter={**OPEN_FILTER, "user_attributes": {"allow": names}})
    assert run.report.delivered == 1
    user = run.users[0]
    assert {r[2]: user.get(r[2]) for r in RESERVED} == {r[2]: r[3] for r in RESERVED}
    assert "user_profile" not in user or "plan" not in user["user_profile"]


# -- who is sent ---------------------------------------------------------------------------

@pytest.mark.parametrize(("messages", "rules", "sent"), [
    ([{"type": "track", "anonymousId": "a1", "event": "Home"}], None, 0),
    ([{"type": "identify", "anonymousId": "a1", "traits": {"plan": "pro"}}], None, 0),
    ([{"type": "screen", "anonymousId": "a1", "name": "Home"}], None, 0),
    ([{"type": "track", "userId": "u1", "event": "Home"}], None, 1),
    ([{"type": "track", "anonymousId": "a1", "userId": "u1", "event": "Home"}], None, 1),
    # Once a visitor logs in, the profile knows their userId: later anonymous hits count too.
    ([{"type": "identify", "anonymousId": "a1", "userId": "u1"},
      {"type": "track", "anonymousId": "a1", "event": "Home"}], None, 2),
    ([{"type": "track", "anonymousId": "a1", "event": "Home"}], {"only_identified": False}, 1),
], ids=["anonymous track", "anonymous identify", "anonymous screen", "identified",
        "both ids", "anonymous after login", "operator turned the rule off"])
async def test_only_identified_users_are_sent(
    harness: Harness, messages: list[dict[str, Any]], rules: dict[str, Any] | None, sent: int
) -> None:
    run = await harness.run(messages, filter=OPEN_FILTER, rules=rules)
    assert len(run.received) == sent and run.report.delivered == sent


@pytest.mark.parametrize(("identities", "expected"), [
    (None, {}),
    ({"allow": ["email"]}, {"email": "ada@example.com"}),
    ({"allow": ["userId"]}, {"userId": "u1"}),
    ({"allow": ["*"]}, {"anonymousId": "a1", "email": "ada@example.com", "userId": "u1"}),
    ({"allow": ["*"], "deny": ["email", "anonymousId"]}, {"userId": "u1"}),
], ids=["none enabled", "email", "userId", "all", "all but denied"])
async def test_the_crossdock_id_is_always_sent_other_identities_when_enabled(
    harness: Harness, identities: dict[str, Any] | None, expected: dict[str, str]
) -> None:
    filt = {"events": {"allow": ["*"]}, **({"identities": identities} if identities else {})}
    run = await harness.run([
        identify({"email": "ada@example.com"}, anonymousId="a1"),
        track({}, event="Home", anonymousId="a1"),
    ], filter=filt)
    assert run.report.dead == 0 and run.received
    pids = set()
    for entry in run.received:
        pid = entry["path"].split("/external/users/")[1].split("/")[0]
        user = entry["body"]["user"]
        assert user["external_id"] == pid and user["external_id_type"] == "crossdock"
        assert pid not in ("u1", "a1", "ada@example.com")
        pids.add(pid)
        got = {i["external_id_type"]: i["external_id"] for i in user.get("identifiers", [])}
        assert got == expected
    assert len(pids) == 1  # one person, one SessionM user


# -- event names ---------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "mapping", "settings", "sent"), [
    (TRACK, None, None, "Order Completed"),
    (TRACK, {"Order Completed": "purchase"}, None, "purchase"),
    (TRACK, None, {"Order Completed": "purchase"}, "purchase"),
    # settings.event_names apply after the mapping's: they can rename its result.
    (TRACK, {"Order Completed": "Product Viewed"}, {"Product Viewed": "purchase"}, "purchase"),
    (TRACK, None, {"Something Else": "purchase"}, "Order Completed"),
    (SCREEN, None, {"Home": "purchase"}, "purchase"),
], ids=["unmapped", "mapping", "settings", "mapping then settings", "other name",
        "screen view"])
async def test_event_name_mappings(
    harness: Harness, message: dict[str, Any], mapping: dict[str, str] | None,
    settings: dict[str, str] | None, sent: str,
) -> None:
    # The filter sees the names as sent to Crossdock, before any mapping.
    filt = {"events": {"allow": ["Order Completed", "Home"]}}
    run = await harness.run([message], filter=filt,
                            mapping={"event_names": mapping} if mapping else None,
                            settings={"event_names": settings} if settings else None)
    assert [e["name"] for e in run.events] == [sent]
    assert run.report.delivered == 1


async def test_an_event_sessionm_does_not_define_is_a_dead_letter(harness: Harness) -> None:
    run = await harness.run([track({}, event="Signed Up")], filter=OPEN_FILTER, deliveries=2)
    assert run.reports[0].dead == 1 and run.reports[1].requests == 0
    assert run.rows[0]["state"] == "dead"
    assert ("SessionM VALIDATION: event.name: 'Signed Up' is not defined for this app"
            in run.rows[0]["last_error"])


# -- replies -------------------------------------------------------------------------------

@pytest.mark.parametrize(("script", "codes", "first", "second", "error"), [
    (None, ["INTERNAL_SERVER_ERROR"], "retried", "delivered",
     "SessionM INTERNAL_SERVER_ERROR: internal server error, try again"),
    (None, ["USER_NOT_FOUND"], "dead", None, "SessionM USER_NOT_FOUND"),
    (None, ["REQUIRES_REGISTERED_USER"], "dead", None, "SessionM REQUIRES_REGISTERED_USER"),
    (None, ["MISSING_DATA"], "dead", None, "SessionM MISSING_DATA"),
    (None, ["VALIDATION"], "dead", None, "SessionM VALIDATION"),
    ([500], None, "retried", "delivered", "HTTP 500"),
    ([502], None, "retried", "delivered", "HTTP 502"),
    ([{"status": 503, "body": '{"status":"error","errors":{"code":"INTERNAL_SERVER_ERROR"}}'}],
     None, "retried", "delivered", "HTTP 503: SessionM INTERNAL_SERVER_ERROR"),
    ([400], None, "dead", None, "HTTP 400"),
    ([404], None, "dead", None, "HTTP 404"),
], ids=["200 INTERNAL_SERVER_ERROR", "200 USER_NOT_FOUND", "200 REQUIRES_REGISTERED_USER",
        "200 MISSING_DATA", "200 VALIDATION", "500", "502", "503 with error body", "400",
        "404"])
async def test_status_error_is_permanent_except_internal_errors_and_5xx_retry(
    harness: Harness, script: list[Any] | None, codes: list[str] | None, first: str,
    second: str | None, error: str,
) -> None:
    if script:
        harness.fake.script(script)
    if codes:
        harness.fake.script_errors(codes)
    run = await harness.run([TRACK], filter=OPEN_FILTER, deliveries=2)
    one, two = run.reports
    assert (one.delivered, one.retried, one.dead) == (
        first == "delivered", first == "retried", first == "dead")
    assert error in (one.destinations["sessionm"].last_error or "")
    if second is None:
        assert two.requests == 0  # a permanent failure is never sent again
        assert run.rows[0]["state"] == "dead" and run.events == []
    else:
        assert two.delivered == 1 and run.rows[0]["state"] == "delivered"
        assert [e["message_id"] for e in run.events] == ["m-track"]
        assert run.rows[0]["attempts"] == 2


@pytest.mark.parametrize(("settings", "script", "error"), [
    ({"api_secret": "wrong"}, None, "SessionM INVALID_API_KEY: api key or secret is not valid"),
    ({"api_key": "other-app"}, None, "SessionM INVALID_API_KEY"),
    ({}, [{"status": 401, "body": '{"status":"error","errors":{"code":"INVALID_API_KEY"}}'}],
     "bad credentials (HTTP 401): INVALID_API_KEY"),
    ({}, [{"status": 403, "body": "forbidden"}], "bad credentials (HTTP 403): forbidden"),
], ids=["wrong secret", "wrong api key", "401", "403"])
async def test_bad_credentials_are_permanent_failures(
    harness: Harness, settings: dict[str, Any], script: list[Any] | None, error: str
) -> None:
    if script:
        harness.fake.script(script)
    run = await harness.run([TRACK, IDENTIFY], filter=OPEN_FILTER, settings=settings,
                            deliveries=2)
    assert run.reports[0].dead >= 1 and run.reports[1].requests == 0
    assert error in (run.rows[0]["last_error"] or "")
    assert run.rows[0]["state"] == "dead"
    assert harness.fake.events == []
