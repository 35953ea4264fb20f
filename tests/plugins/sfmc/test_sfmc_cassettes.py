"""Cassette tests: the SFMC plugin's requests (its token request first) against its contract
fake, recorded by vcrpy.

Replayed from tests/plugins/sfmc/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from sfmc_helpers import destination, item

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.sfmc.fake import DEFAULT_CLIENT_SECRET, SfmcFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=[DEFAULT_CLIENT_SECRET])


def _text(name: str) -> str:
    return (Path(VCR.cassette_library_dir or "") / name).read_text()


def test_cassette_rows_and_an_entry_event(server: RunningServer, fake: SfmcFake) -> None:
    with VCR.use_cassette("rows_and_event.yaml") as cassette:
        results = outcomes(destination(server), [item(1), item(2), item(3, "track")])
    assert results == [DELIVERED, DELIVERED]  # one rowset of two rows, one event
    assert cassette.play_count == (0 if recording() else 3)  # the token, the rowset, the event
    text = _text("rows_and_event.yaml")
    assert "/v2/token" in text and '"access_token":"<secret>"' in text.replace(" ", "")
    assert DEFAULT_CLIENT_SECRET not in text and "eyJ" not in text


def test_cassette_refusals(server: RunningServer, fake: SfmcFake) -> None:
    with VCR.use_cassette("refusals.yaml"):
        bad_row = outcomes(destination(server), [item(1, traits={"email": "not-an-email"})])
        unknown = outcomes(destination(server), [item(2, "track", event="Clicked")])
        no_journey = outcomes(destination(server, options={"journeys": {
            "Clicked": "No-Such-Journey"}}), [item(3, "track", event="Clicked")])
    assert bad_row == [Failed(
        "HTTP 400: Unable to save rows for data extension ID "
        "1ffe53fc-a36b-5a6b-8dbf-9bd345a8a1b8 (errorcode 10006): row 0: the value for column "
        "[EmailAddress] is not a valid EmailAddress")]
    assert [type(o).__name__ for o in unknown] == ["Rejected"]
    assert no_journey == [Failed("HTTP 400: Event definition with key 'No-Such-Journey' not "
                                 "found (errorcode 10000)")]
