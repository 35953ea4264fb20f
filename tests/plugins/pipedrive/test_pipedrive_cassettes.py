"""Cassette tests: the Pipedrive plugin's requests against its contract fake, recorded by
vcrpy.

Replayed from tests/plugins/pipedrive/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from pipedrive_helpers import NUMBER, TOKEN, destination, item

from crossdock.destination import DELIVERED, Failed, Retry
from crossdock.plugins.pipedrive import PipedriveDestination, PipedriveSettings
from crossdock.plugins.pipedrive.fake import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH,
    OAUTH_TOKEN_PATH,
    PipedriveFake,
)
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


def test_cassette_identify_creates_then_updates(server: RunningServer,
                                                fake: PipedriveFake) -> None:
    dest = destination(server, mapping={"custom_fields": {"ltv": {"key": NUMBER,
                                                                  "type": "number"}}})
    with VCR.use_cassette("identify_create_update.yaml") as cassette:
        first = outcomes(dest, [item(1, traits={"email": "ada1@example.com",
                                                "firstName": "Ada", "ltv": 420})])
        second = outcomes(dest, [item(2, traits={"email": "ada1@example.com",
                                                 "firstName": "Ada", "ltv": 560})])
    assert first == second == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 4)
    text = (Path(VCR.cassette_library_dir or "") / "identify_create_update.yaml").read_text()
    assert TOKEN not in text  # the API token never reaches the cassette


def test_cassette_event_of_an_unknown_person(server: RunningServer,
                                             fake: PipedriveFake) -> None:
    with VCR.use_cassette("event_unknown_person.yaml") as cassette:
        results = outcomes(destination(server), [item(1, "track", properties={"seats": 3})])
    assert results == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 3)


def test_cassette_refusals_and_throttling(server: RunningServer, fake: PipedriveFake) -> None:
    fake.burst = 1
    with VCR.use_cassette("refusals.yaml"):
        revoked = outcomes(destination(server, token="revoked"), [item(1)])
        throttled = outcomes(destination(server), [item(2)])
    assert revoked == [Failed(
        "bad credentials (HTTP 401): unauthorized access (Please check developers.pipedrive."
        "com for more information about Pipedrive API.)")]
    # The search passes the Search API's limit; the create is over the token's burst.
    assert throttled == [Retry("HTTP 429: Request over limit (Too many requests in the "
                               "2-second window)", 2.0)]


def test_cassette_oauth_token_then_person(server: RunningServer, fake: PipedriveFake) -> None:
    settings = PipedriveSettings.model_validate({
        "auth": "oauth", "token_url": server.url + OAUTH_TOKEN_PATH,
        "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": DEFAULT_REFRESH})
    dest = PipedriveDestination(settings, PipedriveDestination.default_mapping())
    vcr = plugin_vcr(Path(__file__).parent / "cassettes",
                     secrets=[DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH])
    with vcr.use_cassette("oauth_token_then_person.yaml") as cassette:
        results = outcomes(dest, [item(1)])
    assert results == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 3)  # the token, search, create
    text = (Path(VCR.cassette_library_dir or "") / "oauth_token_then_person.yaml").read_text()
    assert "grant_type=refresh_token" in text and "api_domain" in text
    assert DEFAULT_REFRESH not in text and "pipedrive-access-" not in text
    assert "pipedrive-refresh-" not in text  # the renewed refresh token neither
