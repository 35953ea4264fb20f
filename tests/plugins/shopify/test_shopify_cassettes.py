"""Cassette tests: the Shopify plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/shopify/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 .venv/bin/python -m pytest tests/plugins/shopify -k cassette` (the fake
is started either way).
"""

from __future__ import annotations

from pathlib import Path

from shopify_helpers import TOKEN, audience, destination, item

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.shopify.fake import ShopifyFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=(TOKEN,))


def test_cassette_create_update_and_tag(server: RunningServer, fake: ShopifyFake) -> None:
    with VCR.use_cassette("create_update_tag.yaml") as cassette:
        created = outcomes(destination(server), [item(1)])
        updated = outcomes(destination(server), [item(2, traits={
            "email": "ada1@example.com", "lastName": "King"}, consent={"email": False})])
        tagged = outcomes(destination(server), [audience(3, "audience_entered", traits={
            "email": "ada1@example.com"})])
    assert created == updated == tagged == [DELIVERED]
    # find, create; find, update; find, tagsAdd
    assert cassette.play_count == (0 if recording() else 6)
    text = (Path(VCR.cassette_library_dir or "") / "create_update_tag.yaml").read_text()
    assert TOKEN not in text
    assert "throttleStatus" in text


def test_cassette_refusals(server: RunningServer, fake: ShopifyFake) -> None:
    with VCR.use_cassette("refusals.yaml"):
        bad_phone = outcomes(destination(server), [item(1, traits={
            "email": "ada@example.com", "phone": "+1 999"})])
        wrong_token = outcomes(destination(server, token="shpat_revoked"), [item(2)])
    assert bad_phone == [DELIVERED]  # the phone is left out, the customer made
    assert wrong_token == [Failed(
        'bad credentials (HTTP 401): {"errors": "[API] Invalid API key or access token '
        '(unrecognized login or wrong password)"}')]
