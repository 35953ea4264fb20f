"""Cassette tests: the SessionM plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/sessionm/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sessionm_helpers import API_KEY, API_SECRET

from crossdock.destination import DELIVERED, Failed, OutboxItem, PlannedRequest, Retry
from crossdock.plugins.sessionm import SessionMDestination, SessionMSettings
from crossdock.plugins.sessionm.fake import SessionMFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import routed_payload

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


def item(n: int, kind: str, event: str = "Order Completed", **extra: Any) -> OutboxItem:
    payload = routed_payload(**{
        "type": kind, "messageId": f"m{n}", "userId": "u1", "profileId": "p_cassette",
        "event": event, "properties": {"total": "42.5", "currency": "EUR"},
        "traits": {"first_name": "Ada", "plan": "pro"},
        "identities": {"profileId": "p_cassette", "email": "ada@example.com"}, **extra})
    return OutboxItem(n, f"m{n}", payload)


def exchange(server: RunningServer, items: list[OutboxItem], secret: str = API_SECRET
             ) -> list[tuple[PlannedRequest, httpx.Response, Any]]:
    dest = SessionMDestination(SessionMSettings(
        host=server.url, api_key=API_KEY, api_secret=secret))  # type: ignore[arg-type]
    out = []
    with httpx.Client() as client:
        for planned in dest.build_requests(items):
            assert isinstance(planned, PlannedRequest)
            response = client.send(planned.request)
            out.append((planned, response, dest.classify(planned, response)))
    return out


def test_cassette_identify_then_event(server: RunningServer, fake: SessionMFake) -> None:
    with VCR.use_cassette("identify_then_event.yaml") as cassette:
        results = exchange(server, [item(1, "identify"), item(2, "track"),
                                    item(3, "screen", event="Home")])
    assert [outcome for *_, outcome in results] == [DELIVERED] * 3
    assert results[1][1].json()["event"]["attributes"] == {"currency": "EUR", "total": "42.5"}
    assert cassette.play_count == (0 if recording() else 3)
    text = (Path(VCR.cassette_library_dir or "") / "identify_then_event.yaml").read_text()
    assert "Basic" not in text  # credentials never reach the cassette


def test_cassette_refusals(server: RunningServer, fake: SessionMFake) -> None:
    with VCR.use_cassette("refusals.yaml"):
        results = exchange(server, [
            item(1, "track", event="Signed Up"),
            item(2, "track", properties={f"a{i}": "v" for i in range(11)}),
        ])
    assert [outcome for *_, outcome in results] == [
        Failed("SessionM VALIDATION: event.name: 'Signed Up' is not defined for this app"),
        Failed("SessionM VALIDATION: event.attributes: at most 10, got 11"),
    ]


def test_cassette_internal_error_then_retry(server: RunningServer, fake: SessionMFake) -> None:
    fake.script_errors(["INTERNAL_SERVER_ERROR"])
    with VCR.use_cassette("internal_error.yaml", allow_playback_repeats=False):
        (first,) = exchange(server, [item(1, "track")])
    assert first[2] == Retry("SessionM INTERNAL_SERVER_ERROR: internal server error, try again")


@pytest.mark.parametrize("secret", ["wrong-secret"])
def test_cassette_bad_auth(server: RunningServer, secret: str) -> None:
    with VCR.use_cassette("bad_auth.yaml"):
        ((_, response, outcome),) = exchange(server, [item(1, "identify")], secret=secret)
    assert response.status_code == 200
    assert outcome == Failed("SessionM INVALID_API_KEY: api key or secret is not valid")
