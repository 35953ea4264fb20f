"""/metrics counts every answered request by route and status, errors and unknown paths too
(the counting middleware is plain ASGI; it must see what the exception handlers answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_collector_http import basic, loaded_config, serve


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
