"""The webhook contract fake over real loopback HTTP: signatures, scripts, control routes."""

from __future__ import annotations

import time

import httpx
import pytest
from webhook_helpers import ATTEMPT_TIME, SECRET, destination, item

from crossdock.destination import DELIVERED, Failed, PlannedRequest, Retry
from crossdock.plugins.webhook.fake import WebhookFake, make_app
from crossdock.testing.fakeserver import RunningServer, fake_process, serve


def send(dest_url: str, n: int = 1, attempted_at: float = ATTEMPT_TIME, **settings: object
         ) -> tuple[PlannedRequest, httpx.Response]:
    dest = destination(dest_url, **settings)
    (req,) = dest.build_requests([item(n, attempted_at=attempted_at)])
    assert isinstance(req, PlannedRequest)
    with httpx.Client() as client:
        return req, client.send(req.request)


def test_the_right_secret_is_accepted_and_recorded(server: RunningServer, fake: WebhookFake
                                                   ) -> None:
    req, response = send(server.url + "/in", secret=SECRET)
    assert response.status_code == 200
    assert fake.ids == [req.request.headers["webhook-id"]]
    assert fake.received[0]["body"]["event"] == "Order Completed"
    assert fake.received[0]["path"] == "/in"


def test_a_wrong_secret_is_refused_with_401(server: RunningServer, fake: WebhookFake) -> None:
    req, response = send(server.url + "/in", secret="whsec_" + "A" * 32)
    assert response.status_code == 401
    assert response.text == "webhook-signature does not match"
    assert fake.received == [] and fake.refused[401] == 1
    assert isinstance(destination(server.url).classify(req, response), Failed)


@pytest.mark.parametrize(("offset", "problem"), [(-301, "webhook-timestamp too old"),
                                                 (301, "webhook-timestamp too new")])
def test_a_timestamp_more_than_5_minutes_off_is_refused(server: RunningServer, fake: WebhookFake,
                                                       offset: int, problem: str) -> None:
    _, response = send(server.url + "/in", attempted_at=ATTEMPT_TIME + offset, secret=SECRET)
    assert (response.status_code, response.text) == (401, problem)
    _, near = send(server.url + "/in", attempted_at=ATTEMPT_TIME + offset * 299 // 301,
                   secret=SECRET)
    assert near.status_code == 200


def test_an_unsigned_request_is_refused_when_the_fake_has_a_secret(server: RunningServer) -> None:
    _, response = send(server.url + "/in")
    assert (response.status_code, response.text) == (401, "missing webhook-signature")


@pytest.mark.parametrize("digest", ["sha1", "sha256"])
def test_x_signature_is_verified(digest: str) -> None:
    fake = WebhookFake(secret="plain", x_signature_digest=digest)  # type: ignore[arg-type]
    with serve(make_app(fake)) as server:
        _, good = send(server.url, secret="plain", signature_style="x-signature",
                       x_signature_digest=digest)
        _, bad = send(server.url, secret="other", signature_style="x-signature",
                      x_signature_digest=digest)
    assert (good.status_code, bad.status_code) == (200, 401)
    assert bad.text == "x-signature does not match"


def test_scripted_failures_then_success_count_duplicates(server: RunningServer,
                                                         fake: WebhookFake) -> None:
    fake.script([503, {"status": 429, "body": "slow", "headers": {"Retry-After": "2"}}])
    dest = destination(server.url, secret=SECRET)
    outcomes = []
    with httpx.Client() as client:
        for _ in range(4):
            (req,) = dest.build_requests([item(1)])
            assert isinstance(req, PlannedRequest)
            outcomes.append(dest.classify(req, client.send(req.request)))
    assert outcomes == [Retry("HTTP 503: ", None), Retry("HTTP 429: slow", 2.0),
                        DELIVERED, DELIVERED]
    webhook_id = req.request.headers["webhook-id"]
    assert fake.ids == [webhook_id, webhook_id]
    assert fake.duplicates() == {webhook_id: 2}
    assert dict(fake.refused) == {503: 1, 429: 1}


def test_410_disables(server: RunningServer, fake: WebhookFake) -> None:
    fake.fail_next(410)
    req, response = send(server.url, secret=SECRET)
    assert destination(server.url).classify(req, response) == Failed(
        "endpoint gone (410): disabled"
    )


def test_control_routes_let_another_process_script_and_read(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/_fake/script", json={"replies": [500]}).json() == {"ok": True}
        _, first = send(server.url, secret=SECRET)
        req, second = send(server.url, secret=SECRET)
        seen = client.get("/_fake/received").json()
        bad = client.post("/_fake/script", json={"replies": ["x"]})
        assert client.post("/_fake/script", json={"reset": True}).status_code == 200
        after = client.get("/_fake/received").json()
    assert (first.status_code, second.status_code) == (500, 200)
    assert [d["id"] for d in seen["received"]] == [req.request.headers["webhook-id"]]
    assert seen["refused"] == {"500": 1}
    assert bad.status_code == 400 and "a reply is a status" in bad.json()["error"]
    assert after == {"received": [], "refused": {}, "duplicates": {}}


def test_a_body_that_is_not_json_is_400() -> None:
    with serve(make_app(WebhookFake())) as server:
        response = httpx.post(server.url + "/in", content=b"{nope")
    assert (response.status_code, response.text) == (400, "body is not JSON")


def test_the_fake_runs_standalone() -> None:
    with fake_process("crossdock.plugins.webhook.fake", "--secret", SECRET) as running:
        assert running.banner.startswith(f"webhook fake on {running.url}/ ")
        # The fake process checks the timestamp against its own clock, as a receiver does.
        now = time.time()
        (ok,) = destination(running.url + "/hook", secret=SECRET).build_requests(
            [item(1, attempted_at=now)])
        (bad,) = destination(running.url + "/hook", secret="d3Jvbmc=").build_requests(
            [item(2, attempted_at=now)])
        assert isinstance(ok, PlannedRequest) and isinstance(bad, PlannedRequest)
        with httpx.Client() as client:
            assert client.send(ok.request).status_code == 200
            assert client.send(bad.request).status_code == 401
        received = httpx.get(running.url + "/_fake/received").json()["received"]
        assert [r["id"] for r in received] == [ok.request.headers["webhook-id"]]
