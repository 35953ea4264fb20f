"""Cassette tests: the Cordial plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/cordial/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from cordial_helpers import destination, item

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.cordial.fake import CordialFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


def test_cassette_identify_creates_then_updates(server: RunningServer,
                                                fake: CordialFake) -> None:
    with VCR.use_cassette("identify_create_update.yaml") as cassette:
        first = outcomes(destination(server), [item(1, traits={
            "email": "ada1@example.com", "firstName": "Ada"})])
        second = outcomes(destination(server), [item(2, traits={
            "email": "ada1@example.com", "lastName": "Lovelace"},
            consent={"email": False, "sms": False})])
    assert first == second == [DELIVERED]
    # read, create; read, update
    assert cassette.play_count == (0 if recording() else 4)
    text = (Path(VCR.cassette_library_dir or "") / "identify_create_update.yaml").read_text()
    assert "Basic" not in text  # the API key never reaches the cassette


def test_cassette_activity_of_an_unknown_contact(server: RunningServer,
                                                 fake: CordialFake) -> None:
    with VCR.use_cassette("activity_unknown_contact.yaml") as cassette:
        results = outcomes(destination(server), [item(1, "track", properties={"sku": "s1"})])
    assert results == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 3)


def test_cassette_refusals(server: RunningServer, fake: CordialFake) -> None:
    fake.attributes["first_name"] = "number"
    with VCR.use_cassette("refusals.yaml"):
        invalid = outcomes(destination(server), [item(1)])
        wrong_key = outcomes(destination(server, key="revoked"), [item(2)])
    assert invalid == [Failed('HTTP 400: {"error": true, "message": "first_name: must be a '
                              'number (the attribute\'s validator)"}')]
    assert wrong_key == [Failed('bad credentials (HTTP 401): {"error": true, "message": '
                                '"invalid API key"}')]
