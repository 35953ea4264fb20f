"""The TikTok contract fake over real HTTP: it refuses what TikTok refuses, with HTTP 200 and a
non-zero code (each rule's source is on docs/destinations/tiktok.md)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from tiktok_helpers import PIXEL, TOKEN

from crossdock.plugins.tiktok.fake import PREFIX, TikTokFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, fake_process

HASHED = hashlib.sha256(b"ada@example.com").hexdigest()
EVENT = {"event": "Purchase", "event_time": 1714564800, "event_id": "m-1",
         "user": {"email": HASHED}}


def track(server: RunningServer, body: Any, token: str | None = TOKEN) -> dict[str, Any]:
    headers = {"access-token": token} if token is not None else {}
    answer = httpx.post(server.url + PREFIX + "/event/track/", json=body, headers=headers,
                        timeout=10)
    assert answer.status_code == 200  # TikTok answers 200 and says it in `code`
    result: dict[str, Any] = answer.json()
    return result


def body(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"event_source": "web", "event_source_id": PIXEL, "data": list(events), **fields}


def test_events_are_recorded_with_code_0(server: RunningServer, fake: TikTokFake) -> None:
    answer = track(server, body(EVENT, {**EVENT, "event_id": "m-2", "event": "Registration"}))
    assert answer["code"] == 0 and answer["message"] == "OK" and answer["request_id"]
    assert [e["event_id"] for e in fake.events] == ["m-1", "m-2"]
    # A reserved name is mapped to its standard event by TikTok.
    assert fake.mapped == [("Registration", "CompleteRegistration")]


@pytest.mark.parametrize(("payload", "token", "code", "message"), [
    (body(EVENT), None, 40104, "Access token is null"),
    (body(EVENT), "other", 40105, "invalid"),
    (body(EVENT, event_source="tv"), TOKEN, 40002, "event_source"),
    (body(EVENT, event_source_id="CUNKNOWN"), TOKEN, 40001,
     "No permission to operate pixel code: CUNKNOWN"),
    (body(), TOKEN, 40002, "data: at least one event"),
    (body(*[EVENT] * 1001), TOKEN, 40002, "data: at most 1000 events"),
    (body({**EVENT, "event": ""}), TOKEN, 40002, "Batch.0.event"),
    (body(EVENT, {**EVENT, "event_time": 1714564800000}), TOKEN, 40002, "Batch.1.event_time"),
    (body({**EVENT, "event_time": "2024-05-01"}), TOKEN, 40002, "Batch.0.event_time"),
    (body({**EVENT, "user": {"email": "ada@example.com"}}), TOKEN, 40002,
     "Batch.0.user.email: must be hashed"),
    (body({**EVENT, "user": {"phone": HASHED.upper()}}), TOKEN, 40002, "Batch.0.user.phone"),
    (body({**EVENT, "user": {"external_id": 42}}), TOKEN, 40002, "Batch.0.user.external_id"),
    (body({**EVENT, "properties": {"value": 3}}), TOKEN, 40002,
     "Batch.0.properties.currency: required with value"),
    (body({**EVENT, "properties": {"value": 3, "currency": "euro"}}), TOKEN, 40002,
     "ISO 4217"),
    (body({**EVENT, "properties": {"content_type": "sku"}}), TOKEN, 40002,
     "product or product_group"),
    (body({**EVENT, "properties": {"contents": [{"content_id": 1}]}}), TOKEN, 40002,
     "Batch.0.properties.contents.0.content_id: Not a valid string."),
])
def test_refusals(server: RunningServer, fake: TikTokFake, payload: dict[str, Any],
                  token: str | None, code: int, message: str) -> None:
    answer = track(server, payload, token)
    assert answer["code"] == code and message in answer["message"]
    assert fake.events == []


def test_a_test_event_code_keeps_events_out_of_the_pixel(server: RunningServer,
                                                         fake: TikTokFake) -> None:
    assert track(server, body(EVENT, test_event_code="TEST1"))["code"] == 0
    assert fake.events == [] and fake.test_events == [EVENT]


def test_an_event_id_seen_before_is_deduplicated(server: RunningServer,
                                                 fake: TikTokFake) -> None:
    for _ in range(2):
        assert track(server, body(EVENT))["code"] == 0
    # The same id for another event is another event.
    assert track(server, body({**EVENT, "event": "AddToCart"}))["code"] == 0
    assert len(fake.events) == 2 and fake.deduplicated == 1


def test_deduplication_lasts_48_hours_from_the_first_copy(server: RunningServer,
                                                          fake: TikTokFake,
                                                          clock: ManualClock) -> None:
    assert track(server, body(EVENT))["code"] == 0
    clock.advance(48 * 3600 - 1)
    assert track(server, body(EVENT))["code"] == 0
    assert fake.deduplicated == 1
    # Past the window a repeat of (event, event_id) is counted again.
    clock.advance(2)
    assert track(server, body(EVENT))["code"] == 0
    assert len(fake.events) == 2 and fake.deduplicated == 1


def test_requests_past_the_rate_limit_get_40100(server: RunningServer, fake: TikTokFake,
                                                clock: ManualClock) -> None:
    fake.qps = 2
    codes = [track(server, body({**EVENT, "event_id": f"e{n}"}))["code"] for n in range(3)]
    assert codes == [0, 0, 40100]
    clock.advance(1.0)
    assert track(server, body({**EVENT, "event_id": "e9"}))["code"] == 0


def test_the_fake_runs_on_its_own() -> None:
    with fake_process("crossdock.plugins.tiktok.fake", "--access-token", "t",
                      "--pixel", "CP1") as proc:
        assert "TikTok fake on" in proc.banner
        answer = httpx.post(proc.url + PREFIX + "/event/track/", headers={"access-token": "t"},
                            json={"event_source": "web", "event_source_id": "CP1",
                                  "data": [EVENT]})
        assert answer.json()["code"] == 0
