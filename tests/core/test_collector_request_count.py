"""/metrics counts every answered request by route and status, errors and unknown paths too
(the counting middleware is plain ASGI; it must see what the exception handlers answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from collector_helpers import basic, loaded_config, serve


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with serve(loaded_config(tmp_path)) as running, \
            httpx.Client(base_url=running.url, timeout=10) as c:
        yield c


def test_answers_are_counted_by_route_and_status(client: httpx.Client) -> None:
    assert client.post("/v1/track", headers=basic(), json={"userId": "u", "event": "E"}
                       ).status_code == 200
    assert client.post("/v1/track", headers=basic(), json={"userId": "u"}).status_code == 422
    assert client.post("/v1/track", json={"userId": "u", "event": "E"}).status_code == 401
    assert client.post("/v1/batch", headers=basic(), content=b"{").status_code == 400
    assert client.get("/nowhere").status_code == 404
    lines = set(client.get("/metrics").text.splitlines())
    for endpoint, status in [("/v1/track", 200), ("/v1/track", 422), ("/v1/track", 401),
                             ("/v1/batch", 400), ("(unmatched)", 404)]:
        assert (f'crossdock_collector_requests_total{{endpoint="{endpoint}",'
                f'status="{status}"}} 1') in lines


def test_tracking_paths_answer_other_methods_and_slashes_as_fastapi_does(
        client: httpx.Client) -> None:
    # POST /v1/track is answered before FastAPI's router (DirectTracking); everything else on
    # those paths still reaches the router and gets what it always answered.
    assert client.get("/v1/track").status_code == 405
    assert client.put("/v1/batch", headers=basic(), json={"batch": []}).status_code == 405
    slash = client.post("/v1/track/", headers=basic(), json={"userId": "u", "event": "E"})
    assert slash.status_code in (307, 404)
    ok = client.post("/v1/identify", headers=basic(), json={"userId": "u"})
    assert ok.status_code == 200
    assert ok.json() == {"response": {"status": "queued", "accepted": 1, "duplicates": 0,
                                      "errors": []}}
    lines = set(client.get("/metrics").text.splitlines())
    assert 'crossdock_collector_requests_total{endpoint="/v1/identify",status="200"} 1' in lines
    assert 'crossdock_collector_requests_total{endpoint="/v1/track",status="405"} 1' in lines
