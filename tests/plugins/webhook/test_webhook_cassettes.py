"""Cassette tests: the webhook plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/webhook/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from webhook_helpers import SECRET, destination, item

from crossdock.destination import DELIVERED, Failed, PlannedRequest, Retry
from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes")


def exchange(url: str, items: list[int], **settings: object
             ) -> list[tuple[PlannedRequest, httpx.Response]]:
    dest = destination(url, secret=SECRET, **settings)
    out = []
    with httpx.Client() as client:
        for planned in dest.build_requests([item(n) for n in items]):
            assert isinstance(planned, PlannedRequest)
            out.append((planned, client.send(planned.request)))
    return out


def test_cassette_signed_delivery(server: RunningServer, fake: WebhookFake) -> None:
    with VCR.use_cassette("signed_delivery.yaml") as cassette:
        ((planned, response),) = exchange(server.url + "/hooks/crossdock", [1])
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert destination(server.url).classify(planned, response) == DELIVERED
    assert cassette.play_count == (0 if recording() else 1)
    assert fake.ids == ([planned.request.headers["webhook-id"]] if recording() else [])
    # The signature is derived from the secret: it never reaches the cassette.
    assert "webhook-signature" not in cassette.requests[0].headers
    assert "webhook-signature" not in (Path(VCR.cassette_library_dir or "")
                                       / "signed_delivery.yaml").read_text()


def test_cassette_batch_delivery(server: RunningServer, fake: WebhookFake) -> None:
    with VCR.use_cassette("batch_delivery.yaml"):
        ((planned, response),) = exchange(server.url + "/hooks/crossdock", [1, 2, 3], batch=True)
    assert destination(server.url).classify(planned, response) == DELIVERED
    assert len(json.loads(planned.request.content)["batch"]) == 3


def test_cassette_scripted_failures(server: RunningServer, fake: WebhookFake) -> None:
    fake.script([
        {"status": 503, "body": "maintenance", "headers": {"Retry-After": "120"}},
        {"status": 410, "body": "endpoint disabled"},
    ])
    with VCR.use_cassette("scripted_failures.yaml"):
        (first, second) = exchange(server.url + "/hooks/crossdock", [1, 2])
    dest = destination(server.url)
    assert dest.classify(*first) == Retry("HTTP 503: maintenance", 120.0)
    assert dest.classify(*second) == Failed("endpoint gone (410): disabled: endpoint disabled")


def test_cassette_wrong_secret(server: RunningServer) -> None:
    dest = destination(server.url + "/hooks/crossdock", secret="whsec_" + "B" * 32)
    (planned,) = dest.build_requests([item(1)])
    assert isinstance(planned, PlannedRequest)
    with VCR.use_cassette("wrong_secret.yaml"), httpx.Client() as client:
        response = client.send(planned.request)
    assert (response.status_code, response.text) == (401, "webhook-signature does not match")
    assert isinstance(dest.classify(planned, response), Failed)
