"""Follow-up requests: a plugin whose answer decides its next request (look a person up, then
create or update them) stays pure, and the engine sends the steps as one attempt."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import BaseModel

from crossdock.config import LoadedConfig
from crossdock.delivery import deliver_once
from crossdock.destination import (
    MAX_FOLLOW_UPS,
    Destination,
    FollowUp,
    OutboxItem,
    Outcome,
    PlannedRequest,
    http_outcome,
)
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.testing.clock import ManualClock
from crossdock.testing.exchange import exchange
from crossdock.testing.fakeserver import RunningServer, serve
from crossdock.testing.payloads import outbox_item


class LookupSettings(BaseModel):
    url: str
    endless: bool = False


class LookupDestination(Destination):
    """Upserts a person by email: GET /people?email= first, then POST /people (404) or
    PUT /people/{id} (200). With `endless`, every answer asks for another lookup."""

    plugin_name = "lookup"
    settings_model = LookupSettings

    @property
    def config(self) -> LookupSettings:
        assert isinstance(self.settings, LookupSettings)
        return self.settings

    def build_requests(self, items: Sequence[OutboxItem]) -> list[PlannedRequest]:
        return [PlannedRequest(self.lookup(item), [item], step="lookup") for item in items]

    def lookup(self, item: OutboxItem) -> httpx.Request:
        return httpx.Request("GET", self.config.url + "/people",
                             params={"email": item.payload["email"]})

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | FollowUp:
        (item,) = planned.items
        if self.config.endless:
            return FollowUp(self.lookup(item), step="lookup")
        if planned.step != "lookup":
            assert planned.step == "write"
            return http_outcome(response)
        body = {"email": item.payload["email"], "name": item.payload["name"]}
        if response.status_code == 404:
            return FollowUp(httpx.Request("POST", self.config.url + "/people", json=body),
                            step="write")
        if response.status_code == 200:
            person = response.json()["id"]
            return FollowUp(httpx.Request("PUT", f"{self.config.url}/people/{person}",
                                          json=body), step="write")
        return http_outcome(response)


@dataclass
class People:
    """The destination's side: people by id, every request seen, scripted failures by
    method."""

    people: dict[int, dict[str, Any]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()

        async def handle(request: web.Request) -> web.Response:
            self.seen.append(request.method)
            if request.method in self.fail:
                return web.Response(status=self.fail.pop(request.method), text="busy")
            if request.method == "GET":
                email = request.query["email"]
                found = [pid for pid, p in self.people.items() if p["email"] == email]
                if not found:
                    return web.Response(status=404, text="no such person")
                return web.json_response({"id": found[0]})
            body = json.loads(await request.read())
            if request.method == "POST":
                pid = len(self.people) + 1
                self.people[pid] = body
                return web.json_response({"id": pid}, status=201)
            self.people[int(request.match_info["id"])] = body
            return web.json_response({"id": int(request.match_info["id"])})

        app.router.add_route("*", "/people", handle)
        app.router.add_route("PUT", "/people/{id}", handle)
        return app


@pytest.fixture
def people() -> Iterator[tuple[People, RunningServer]]:
    fake = People()
    with serve(fake.app()) as server:
        yield fake, server


def loaded(tmp_path: Path, url: str, **settings: Any) -> LoadedConfig:
    raw = {
        "outbox": {"url": f"sqlite:///{tmp_path / 'crossdock.db'}"},
        "destinations": {"crm": {"plugin": "lookup", "settings": {"url": url, **settings},
                                 "delivery": {"allow_private_network": True}}},
    }
    return parse_config(raw, base_dir=tmp_path, env={}, types={"lookup": LookupDestination})


def enqueue(outbox: SQLiteOutbox, now: float, *people: tuple[str, str]) -> None:
    outbox.enqueue([NewRow("crm", f"m{i}", {"email": email, "name": name})
                    for i, (email, name) in enumerate(people)], now=now)


@pytest.mark.parametrize(("known", "second", "stored"), [
    ({}, "POST", {1: {"email": "ann@example.com", "name": "Ann"}}),
    ({7: {"email": "ann@example.com", "name": "Old"}}, "PUT",
     {7: {"email": "ann@example.com", "name": "Ann"}}),
])
async def test_the_lookup_answer_decides_whether_to_create_or_update(
    people: tuple[People, RunningServer], tmp_path: Path, outbox: SQLiteOutbox,
    clock: ManualClock, known: dict[int, dict[str, Any]], second: str,
    stored: dict[int, dict[str, Any]],
) -> None:
    fake, server = people
    fake.people.update(known)
    enqueue(outbox, clock.now, ("ann@example.com", "Ann"))
    report = await deliver_once(loaded(tmp_path, server.url), outbox, clock=clock)
    assert (report.delivered, report.requests) == (1, 2)
    assert fake.seen == ["GET", second]
    assert fake.people == stored


async def test_a_failed_step_retries_the_item_from_its_first_request(
    people: tuple[People, RunningServer], tmp_path: Path, outbox: SQLiteOutbox,
    clock: ManualClock,
) -> None:
    fake, server = people
    fake.fail["POST"] = 503
    enqueue(outbox, clock.now, ("ann@example.com", "Ann"))
    config = loaded(tmp_path, server.url)
    report = await deliver_once(config, outbox, clock=clock)
    assert (report.delivered, report.retried, report.requests) == (0, 1, 2)
    row = outbox.row("crm", "m0")
    assert row is not None and row["last_error"] == "HTTP 503: busy"
    clock.now = row["next_attempt_at"]
    report = await deliver_once(config, outbox, clock=clock)
    assert report.delivered == 1
    # The second attempt looked the person up again before creating them.
    assert fake.seen == ["GET", "POST", "GET", "POST"]
    assert list(fake.people.values()) == [{"email": "ann@example.com", "name": "Ann"}]


async def test_a_plugin_asking_for_follow_ups_for_ever_is_stopped_and_retried(
    people: tuple[People, RunningServer], tmp_path: Path, outbox: SQLiteOutbox,
    clock: ManualClock,
) -> None:
    fake, server = people
    enqueue(outbox, clock.now, ("ann@example.com", "Ann"))
    report = await deliver_once(loaded(tmp_path, server.url, endless=True), outbox,
                                clock=clock)
    assert (report.retried, report.requests) == (1, MAX_FOLLOW_UPS + 1)
    row = outbox.row("crm", "m0")
    assert row is not None
    assert row["last_error"] == (f"plugin lookup asked for more than {MAX_FOLLOW_UPS} "
                                 "follow-up requests")
    assert fake.seen == ["GET"] * (MAX_FOLLOW_UPS + 1)


def test_the_testing_exchange_follows_follow_ups_as_the_engine_does(
    people: tuple[People, RunningServer],
) -> None:
    fake, server = people
    dest = LookupDestination(LookupSettings(url=server.url))
    item = outbox_item({"messageId": "msg-1", "email": "ann@example.com", "name": "Ann"})
    steps = exchange(dest, [item])
    assert [(s.planned.request.method, s.planned.step)  # type: ignore[union-attr]
            for s in steps] == [("GET", "lookup"), ("POST", "write")]
    assert fake.people == {1: {"email": "ann@example.com", "name": "Ann"}}
