"""Cassette tests: the Google Ads plugin's requests (its token request first) against its
contract fake, recorded by vcrpy.

Replayed from tests/plugins/google_ads/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins/google_ads -k cassette`.
"""

from __future__ import annotations

from pathlib import Path

from google_ads_helpers import SECRETS, conversion, destination, item, membership

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.google_ads.fake import GoogleAdsFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=SECRETS)


def _text(name: str) -> str:
    return (Path(VCR.cassette_library_dir or "") / name).read_text()


def test_cassette_customer_match_job(server: RunningServer, fake: GoogleAdsFake) -> None:
    with VCR.use_cassette("customer_match_job.yaml") as cassette:
        results = outcomes(destination(server), [
            item(membership(1, phone="+1 650 555 1212"), 1),
            item(membership(2, event="audience_exited"), 2)])
    assert results == [DELIVERED]  # one job: its run settles both
    assert cassette.play_count == (0 if recording() else 4)  # token, create, add, run
    text = _text("customer_match_job.yaml")
    assert all(secret not in text for secret in SECRETS)


def test_cassette_conversions_partial_failure(server: RunningServer,
                                              fake: GoogleAdsFake) -> None:
    with VCR.use_cassette("conversions.yaml"):
        results = outcomes(destination(server), [
            item(conversion(1), 1), item(conversion(2, gclid="unknown-2"), 2)])
    assert results == [DELIVERED, Failed("conversionUploadError.UNPARSEABLE_GCLID: The click "
                                         "ID could not be decoded.")]
