"""Cassette tests: the Brevo plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/brevo/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from brevo_helpers import API_KEY, DOI, destination, item

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.brevo.fake import BrevoFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=(API_KEY,))


def test_cassette_identify_creates_then_updates(server: RunningServer,
                                                fake: BrevoFake) -> None:
    with VCR.use_cassette("identify_upsert.yaml") as cassette:
        first = outcomes(destination(server, list_ids=[2]), [item(1)])
        second = outcomes(destination(server, list_ids=[2]), [item(2, traits={
            "email": "ada1@example.com", "lastName": "Lovelace"},
            consent={"email": False, "sms": False})])
    assert first == second == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 2)
    text = (Path(VCR.cassette_library_dir or "") / "identify_upsert.yaml").read_text()
    assert API_KEY not in text  # the API key never reaches the cassette


def test_cassette_double_opt_in(server: RunningServer, fake: BrevoFake) -> None:
    with VCR.use_cassette("double_opt_in.yaml") as cassette:
        results = outcomes(destination(server, list_ids=[2], double_opt_in=DOI), [item(1)])
    assert results == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 2)  # read, then DOI


def test_cassette_event(server: RunningServer, fake: BrevoFake) -> None:
    with VCR.use_cassette("event.yaml") as cassette:
        results = outcomes(destination(server), [item(1, "track", properties={"sku": "s1"})])
    assert results == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 1)


def test_cassette_refusals(server: RunningServer, fake: BrevoFake) -> None:
    with VCR.use_cassette("refusals.yaml"):
        unknown_list = outcomes(destination(server, list_ids=[99]), [item(1)])
        wrong_key = outcomes(destination(server, key="xkeysib-revoked"), [item(2)])
    assert unknown_list == [Failed("brevo 404 document_not_found: List ID 99 does not exist")]
    assert wrong_key == [Failed("bad credentials (brevo 401 unauthorized: Key not found)")]
