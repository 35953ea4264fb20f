"""Cassette tests: the TikTok plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/tiktok/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from tiktok_helpers import PIXEL, TOKEN, destination, item

from crossdock.destination import DELIVERED, Failed, Retry
from crossdock.plugins.tiktok.fake import TikTokFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

FOLDER = Path(__file__).parent / "cassettes"
VCR = plugin_vcr(FOLDER, secrets=[TOKEN])


def test_cassette_purchase_and_view(server: RunningServer, fake: TikTokFake) -> None:
    with VCR.use_cassette("purchase_view.yaml") as cassette:
        results = outcomes(destination(server), [
            item(1, properties={"order_id": "o-1", "value": 42.5, "currency": "EUR",
                                "products": [{"product_id": "p1", "price": 42.5}]}),
            item(2, event="ViewContent", properties={"product_id": "p2"})])
    assert results == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 1)
    assert TOKEN not in (FOLDER / "purchase_view.yaml").read_text()


def test_cassette_codes(server: RunningServer, fake: TikTokFake) -> None:
    fake.qps = 1
    with VCR.use_cassette("codes.yaml") as cassette:
        first = outcomes(destination(server), [item(1)])
        throttled = outcomes(destination(server), [item(2)])
        wrong = outcomes(destination(server, token="revoked-token"), [item(3)])
        fake.pixels = {"COTHER"}
        fake.qps = None
        forbidden = outcomes(destination(server), [item(4)])
    assert cassette.play_count == (0 if recording() else 4)
    assert first == [DELIVERED]
    assert throttled == [Retry("tiktok 40100: Too many requests. Please retry in some time.",
                               1.0)]
    assert wrong == [Failed(
        "bad access token (tiktok 40105: Access token is invalid or has been revoked)")]
    assert forbidden == [Failed(f"tiktok 40001: No permission to operate pixel code: {PIXEL}")]
