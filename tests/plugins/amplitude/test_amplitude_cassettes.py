"""Cassette tests: the Amplitude plugin's requests against its contract fake, recorded by
vcrpy.

Replayed from tests/plugins/amplitude/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

import json
from pathlib import Path

from amplitude_helpers import API_KEY, destination, item

from crossdock.destination import DELIVERED, Failed, Retry
from crossdock.plugins.amplitude.fake import AmplitudeFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

FOLDER = Path(__file__).parent / "cassettes"
# The API key travels in the bodies: replaced wherever it stands.
VCR = plugin_vcr(FOLDER, secrets=[API_KEY])


def test_cassette_events_and_identify(server: RunningServer, fake: AmplitudeFake) -> None:
    with VCR.use_cassette("events_identify.yaml") as cassette:
        results = outcomes(destination(server), [
            item(1, sessionStart="2024-05-01T11:59:00Z", properties={"revenue": 12.5}),
            item(2, "identify", traits={"plan": "pro", "firstName": "Ada"}),
            item(3, "page", properties={"path": "/"})])
    assert results == [DELIVERED] * 3
    assert cassette.play_count == (0 if recording() else 2)  # identify, then the events
    text = (FOLDER / "events_identify.yaml").read_text()
    assert API_KEY not in text


def test_cassette_partial_refusals(server: RunningServer, fake: AmplitudeFake) -> None:
    fake.eps_threshold = 2
    fake.max_events = 4
    busy = [item(n, userId="user-busy", anonymousId=None) for n in (1, 2, 3)]
    calm = [item(n) for n in range(4, 9)]
    with VCR.use_cassette("partial_refusals.yaml") as cassette:
        # 8 events > 4: 413, the first half again; 429 for the busy user, whose 3 events
        # are paused; the calm one of that half again: 200.
        results = outcomes(destination(server), [*busy, *calm])
    assert cassette.play_count == (0 if recording() else 3)
    assert results[:3] == [Retry(
        "amplitude 429: Too many requests for some devices and users: throttled (more than "
        "the events per second Amplitude takes for one user or device); paused 30s",
        after=30.0)] * 3
    assert results[3] == DELIVERED
    assert results[4:] == [Retry("amplitude 413: Payload too large: the request was split; "
                                 "retried in a later request", after=0.0)] * 4


def test_cassette_bad_key(server: RunningServer, fake: AmplitudeFake) -> None:
    with VCR.use_cassette("bad_key.yaml"):
        results = outcomes(destination(server, key="revoked-key"), [item(1)])
    assert results == [Failed("amplitude 400: Invalid API key")]
    recorded = (FOLDER / "bad_key.yaml").read_text()
    assert json.dumps("Invalid API key")[1:-1] in recorded
