"""The Mailchimp contract fake over real loopback HTTP: auth, shapes, the connection limit,
problem+json errors, and the plugin's requests keeping members, tags and events right."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import httpx
import pytest
from mailchimp_helpers import audience, destination, item

from crossdock.destination import DELIVERED, Failed, PlannedRequest, Retry
from crossdock.plugins.mailchimp.fake import DEFAULT_KEY, DEFAULT_LIST, MailchimpFake, make_app
from crossdock.testing.exchange import outcomes as send
from crossdock.testing.fakeserver import RunningServer, fake_process, serve


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture
def fake() -> MailchimpFake:
    """Overrides conftest's: this fake also knows compliance-state and forgotten emails."""
    return MailchimpFake(compliance={"gone@example.com"}, forgotten={"erased@example.com"})


def api(server: RunningServer, method: str, path: str, json: Any = None,
        key: str = DEFAULT_KEY) -> httpx.Response:
    auth = base64.b64encode(f"anyone:{key}".encode()).decode()
    return httpx.request(method, f"{server.url}/3.0{path}", json=json,
                         headers={"Authorization": f"Basic {auth}"})


def test_members_tags_and_events_end_right(server: RunningServer, fake: MailchimpFake) -> None:
    dest = destination(f"{server.url}/3.0", tag_prefix="cd_")
    traits = {"email": "Ann@Example.com", "firstName": "Ann", "birthDate": "1990-07-04",
              "address": {"addr1": "1 Main St", "city": "Springfield", "state": "IL",
                          "zip": "62701"}}
    outcomes = send(dest, [item(1, traits=traits), audience(1, email="ann@example.com"),
                           item(1, "track", "Order Completed", traits={"email": "ann@example.com"},
                                properties={"total": 42})])
    assert outcomes == [DELIVERED] * 3
    member = fake.member("ann@example.com")
    assert member is not None
    assert (member.status, member.tags) == ("subscribed", {"cd_high_value"})
    assert member.merge_fields["BIRTHDAY"] == "07/04"
    assert member.events == [{"name": "Order_Completed", "properties": {"total": "42"},
                              "occurred_at": "2024-05-01T12:00:00+00:00"}]
    assert send(dest, [audience(1, False, email="ann@example.com")]) == [DELIVERED]
    assert fake.tagged("cd_high_value") == set()
    state = httpx.get(f"{server.url}/_fake/state").json()
    assert state["lists"][DEFAULT_LIST][md5("ann@example.com")]["tags"] == []


def test_batch_subscribe_reports_each_member(server: RunningServer, fake: MailchimpFake) -> None:
    dest = destination(f"{server.url}/3.0")
    assert send(dest, [item(1, traits={"email": "gone@example.com"})]) == [DELIVERED]
    fake.member("gone@example.com").status = "unsubscribed"  # type: ignore[union-attr]
    items = [item(n, traits={"email": email, "emailOptIn": True})
             for n, email in enumerate(["new@example.com", "gone@example.com",
                                        "erased@example.com", "bad@@example"], start=2)]
    outcomes = send(dest, items)
    assert outcomes[0] == DELIVERED
    assert all(isinstance(o, Failed) for o in outcomes[1:])
    assert "compliance state" in outcomes[1].reason
    assert "permanently deleted" in outcomes[2].reason
    assert "looks fake or invalid" in outcomes[3].reason
    assert fake.member("new@example.com").status == "subscribed"  # type: ignore[union-attr]
    assert fake.member("gone@example.com").status == "unsubscribed"  # type: ignore[union-attr]


def test_a_stated_status_changes_existing_members_through_put_and_batch(
        server: RunningServer, fake: MailchimpFake) -> None:
    dest = destination(f"{server.url}/3.0")
    people = [item(n, traits={"email": f"p{n}@example.com"}) for n in (1, 2, 3)]
    assert send(dest, people) == [DELIVERED] * 3
    # One member changes (a PUT), then two at once (batch subscribe, update_existing).
    assert send(dest, [item(1, traits={"email": "p1@example.com",
                                       "subscriptionStatus": "unsubscribed"})]) == [DELIVERED]
    assert send(dest, [item(n, traits={"email": f"p{n}@example.com",
                                       "subscriptionStatus": "transactional"})
                       for n in (2, 3)]) == [DELIVERED] * 2
    statuses = {n: fake.member(f"p{n}@example.com").status  # type: ignore[union-attr]
                for n in (1, 2, 3)}
    assert statuses == {1: "unsubscribed", 2: "transactional", 3: "transactional"}
    batch = [r for r in fake.received if r["path"] == f"/3.0/lists/{DEFAULT_LIST}"]
    assert batch[-1]["body"]["update_existing"] is True
    assert batch[-1]["query"] == {"skip_merge_validation": "true"}


def test_a_required_merge_field_is_enforced_unless_validation_is_skipped() -> None:
    fake = MailchimpFake(required_merge_fields={"FNAME"})
    with serve(make_app(fake)) as server:
        strict = destination(f"{server.url}/3.0", skip_merge_validation=False)
        (refused,) = send(strict, [item(1, traits={"email": "a@example.com"})])
        batch = send(strict, [item(n, traits={"email": f"b{n}@example.com",
                                              "emailOptIn": True}) for n in (2, 3)])
        lenient = destination(f"{server.url}/3.0")
        accepted = send(lenient, [item(n, traits={"email": f"c{n}@example.com",
                                                  "emailOptIn": n > 4}) for n in (4, 5, 6)])
    assert refused == Failed("mailchimp 400 Invalid Resource: Your merge fields were invalid. "
                             "FNAME: Please enter a value")
    assert batch == [Failed("mailchimp batch subscribe: Your merge fields were invalid. FNAME: "
                            "Please enter a value (ERROR_GENERIC)")] * 2
    assert accepted == [DELIVERED] * 3
    assert fake.member("c4@example.com") is not None


def test_upsert_refusals_are_classified(server: RunningServer, fake: MailchimpFake) -> None:
    dest = destination(f"{server.url}/3.0", merge_fields={"nickname": "NICK"})
    (unknown_field,) = send(dest, [item(1, traits={"email": "a@example.com", "nickname": "A"})])
    assert unknown_field == Failed("mailchimp 400 Invalid Resource: Your merge fields were "
                                   "invalid. NICK is not a merge field of this audience.")
    (forgotten,) = send(dest, [item(2, traits={"email": "erased@example.com"})])
    assert isinstance(forgotten, Failed)
    assert forgotten.reason.startswith("mailchimp 400 Forgotten Email Not Subscribed:")
    (no_member,) = send(dest, [audience(3)])
    assert no_member == Failed("mailchimp 404 Resource Not Found: The requested resource "
                               "could not be found.")
    (bad_key,) = send(destination(f"{server.url}/3.0", api_key="wrong-us1"), [item(4)])
    assert isinstance(bad_key, Failed) and bad_key.reason.startswith("mailchimp 401 API Key")
    fake.fail_with(503, "Service Unavailable", "try later", retry_after="7")
    assert send(dest, [item(5)]) == [Retry("mailchimp 503 Service Unavailable: try later", 7.0)]
    assert fake.errors["Invalid Resource"] == 1 and fake.errors["Resource Not Found"] == 1


@pytest.mark.parametrize(("method", "path", "body", "title", "detail"), [
    ("PUT", f"/lists/{DEFAULT_LIST}/members/{md5('a@example.com')}",
     {"email_address": "a@example.com"}, "Invalid Resource", "status_if_new is required"),
    ("PUT", f"/lists/{DEFAULT_LIST}/members/{md5('b@example.com')}",
     {"email_address": "a@example.com", "status_if_new": "subscribed"}, "Invalid Resource",
     "does not match"),
    ("PUT", f"/lists/{DEFAULT_LIST}/members/{md5('a@example.com')}",
     {"email_address": "a@example.com", "status_if_new": "subscribed",
      "merge_fields": {"BIRTHDAY": "1990-07-04"}}, "Invalid Resource", "BIRTHDAY must be MM/DD"),
    ("PUT", f"/lists/{DEFAULT_LIST}/members/{md5('a@example.com')}",
     {"email_address": "a@example.com", "status_if_new": "maybe"}, "Invalid Resource",
     "status_if_new must be one of"),
    ("PUT", f"/lists/nolist/members/{md5('a@example.com')}",
     {"email_address": "a@example.com", "status_if_new": "subscribed"}, "Resource Not Found",
     "could not be found"),
    ("POST", f"/lists/{DEFAULT_LIST}",
     {"members": [{"email_address": f"p{n}@example.com", "status": "subscribed"}
                  for n in range(501)], "update_existing": True},
     "Invalid Resource", "at most 500 per call"),
])
def test_shapes_are_enforced(server: RunningServer, method: str, path: str, body: Any,
                             title: str, detail: str) -> None:
    response = api(server, method, path, body)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["title"], problem["status"]) == (title, response.status_code)
    assert detail in problem["detail"]


def test_event_shapes_are_enforced(server: RunningServer) -> None:
    member = md5("a@example.com")
    assert api(server, "PUT", f"/lists/{DEFAULT_LIST}/members/{member}",
               {"email_address": "a@example.com", "status_if_new": "subscribed"}
               ).status_code == 200
    path = f"/lists/{DEFAULT_LIST}/members/{member}/events"
    assert api(server, "POST", path, {"name": "x"}).status_code == 400
    assert api(server, "POST", path, {"name": "y" * 31}).status_code == 400
    assert api(server, "POST", path, {"name": "ok", "properties": {"n": 1}}).status_code == 400
    assert api(server, "POST", path, {"name": "ok", "properties": {"n": "1"}}).status_code == 204
    tags = f"/lists/{DEFAULT_LIST}/members/{member}/tags"
    assert api(server, "POST", tags, {"tags": [{"name": "t", "status": "on"}]}
               ).status_code == 400


def test_bearer_auth_is_accepted(server: RunningServer) -> None:
    response = httpx.put(
        f"{server.url}/3.0/lists/{DEFAULT_LIST}/members/{md5('a@example.com')}",
        json={"email_address": "a@example.com", "status_if_new": "pending"},
        headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert (response.status_code, response.json()["status"]) == (200, "pending")
    assert httpx.put(f"{server.url}/3.0/lists/{DEFAULT_LIST}/members/x",
                     headers={"Authorization": "Bearer nope"}).status_code == 401


async def test_more_than_10_connections_per_key_get_429(fake: MailchimpFake) -> None:
    fake.latency = 1.0  # every request stays in flight long enough to overlap the others
    with serve(make_app(fake)) as server:
        dest = destination(f"{server.url}/3.0")
        planned = [p for n in range(12) for p in dest.build_requests([item(n)])]
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(limits=limits) as client:
            responses = await asyncio.gather(
                *(client.send(p.request) for p in planned if isinstance(p, PlannedRequest)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 2
    assert fake.peak_in_flight == 10
    assert isinstance(dest.classify(planned[0], next(r for r in responses  # type: ignore[arg-type]
                                                     if r.status_code == 429)), Retry)


def test_the_fake_runs_standalone() -> None:
    with fake_process("crossdock.plugins.mailchimp.fake", "--key", "k-us9",
                      "--list", "L1") as running:
        assert running.banner.startswith(f"mailchimp fake on {running.url}/3.0 ")
        assert httpx.get(running.url + "/_fake/state").json()["lists"] == {"L1": {}}
        dest = destination(running.url + "/3.0", api_key="k-us9", list_id="L1")
        assert send(dest, [item(1)]) == [DELIVERED]
