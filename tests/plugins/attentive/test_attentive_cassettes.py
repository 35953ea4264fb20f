"""Cassette tests: the Attentive plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/attentive/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from attentive_helpers import destination, item

from crossdock.destination import DELIVERED, Failed, Retry
from crossdock.plugins.attentive.fake import AttentiveFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


def test_cassette_every_endpoint(server: RunningServer, fake: AttentiveFake) -> None:
    items = [
        item(1, "identify", traits={"email": "ada1@example.com", "plan": "pro", "age": "24"}),
        item(2, "identify", traits={"email": "ada2@example.com"}),
        item(3, event="Order Shipped", properties={"carrier": "UPS"}),
        item(4, event="Order Completed", properties={"currency": "USD", "products": [
            {"product_id": "p1", "variant": "p1-m", "price": 19.5, "quantity": 2}]}),
        item(5, event="User Subscribed", consent={"sms": True, "email": False}),
        item(6, event="User Unsubscribed"),
    ]
    with VCR.use_cassette("every_endpoint.yaml") as cassette:
        assert outcomes(destination(server), items) == [DELIVERED] * 6
    assert cassette.play_count == (0 if recording() else 6)
    text = (Path(VCR.cassette_library_dir or "") / "every_endpoint.yaml").read_text()
    assert "Bearer" not in text  # the API key never reaches the cassette


def test_cassette_refusals(server: RunningServer, fake: AttentiveFake) -> None:
    fake.fixed_values["tier"] = {"Adult", "Teen"}
    with VCR.use_cassette("refusals.yaml"):
        refused = outcomes(destination(server), [item(1, "identify", traits={"tier": "Senior"})])
        wrong_key = outcomes(destination(server, key="revoked-key"), [item(2, event="A")])
    assert refused == [Failed('HTTP 400: {"message": "properties.tier: \'Senior\' is not one '
                              'of the values defined for it in Attentive"}')]
    assert wrong_key == [Failed('bad credentials (HTTP 401): {"message": "Unauthorized: a '
                                'valid Bearer API key is required"}')]


def test_cassette_throttled(server: RunningServer, fake: AttentiveFake) -> None:
    fake.rate_limits = {"/v1/subscriptions": 1.0}
    with VCR.use_cassette("throttled.yaml"):
        results = outcomes(destination(server), [item(1, event="User Subscribed"),
                                                 item(2, event="User Subscribed")])
    assert results == [DELIVERED, Retry('HTTP 429: {"message": "Too Many Requests"}', 1.0)]
