"""What the collector reads as a body: gzip (Content-Encoding), any Content-Type, and the size
limit on the wire and once inflated, a gzip bomb included."""

from __future__ import annotations

import functools
import gzip
import json
import os
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_helpers import Running, basic, loaded_config, serve

from crossdock.collector.body import Gunzip
from crossdock.collector.errors import ApiError

LIMIT = 512_000  # the default collector.max_body_bytes

Served = tuple[Running, httpx.Client]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The collector on 127.0.0.1 and a client of it."""
    with serve(loaded_config(tmp_path)) as r, httpx.Client(base_url=r.url, timeout=30) as c:
        yield r, c


@functools.cache
def bomb(inflated: int = 200 * 1024 * 1024) -> bytes:
    """A gzip stream of about 200 KB that inflates to 200 MB of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(inflated // len(chunk))]
    return b"".join([*parts, packer.flush()])


def gz(value: Any) -> bytes:
    # mtime=0: the same bytes in every process, so parametrized ids built from them agree
    # between pytest-xdist's workers
    return gzip.compress(json.dumps(value).encode(), mtime=0)


def post(client: httpx.Client, path: str, content: bytes, **headers: str) -> httpx.Response:
    return client.post(path, content=content, headers={**basic(), **headers})


def batch_of(n: int, pad: int = 0) -> dict[str, Any]:
    return {"batch": [{"type": "track", "anonymousId": f"a{i}", "event": "Viewed",
                       "properties": {"pad": "x" * pad}} for i in range(n)]}


def test_gzip_bodies_are_inflated(served: Served) -> None:
    collector, client = served
    r = post(client, "/v1/track", gz({"anonymousId": "a", "event": "Signed Up"}),
             **{"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    # Two gzip members one after the other are one body, as gzip(1) reads them.
    body = json.dumps(batch_of(2)).encode()
    members = gzip.compress(body[:10]) + gzip.compress(body[10:])
    r = post(client, "/v1/batch", members, **{"Content-Encoding": "x-gzip"})
    assert r.status_code == 200, r.text
    assert r.json()["response"]["accepted"] == 2
    assert collector.processed() == 3


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", None])
def test_json_is_read_whatever_the_content_type(served: Served,
                                                content_type: str | None) -> None:
    collector, client = served
    # analytics.js sends its beacons (navigator.sendBeacon) as text/plain.
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"anonymousId": "a", "event": "Signed Up", "messageId": "m"}).encode()
    r = post(client, "/v1/track", body, **headers)
    assert r.status_code == 200, r.text
    assert collector.processed() == 1


def test_the_limit_applies_to_the_inflated_body(served: Served) -> None:
    collector, client = served
    # 500 messages of about 800 bytes: a few KB gzipped, 400 KB inflated, under the limit.
    under = json.dumps(batch_of(500, pad=740)).encode()
    assert 380_000 < len(under) < LIMIT
    r = post(client, "/v1/batch", gzip.compress(under), **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.json()["response"]["accepted"] == 500
    over = json.dumps(batch_of(500, pad=1100)).encode()
    assert len(over) > LIMIT and len(gzip.compress(over)) < LIMIT // 10
    r = post(client, "/v1/batch", gzip.compress(over), **{"Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert r.json()["response"]["message"] == (
        f"body: at most {LIMIT} bytes once inflated (Content-Encoding: gzip)")
    assert r.json()["code"] == "too_large"
    assert collector.processed() == 500


def test_a_gzip_bomb_is_refused_with_413(served: Served) -> None:
    collector, client = served
    assert len(bomb()) < LIMIT
    r = post(client, "/v1/batch", bomb(), **{"Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert r.json()["response"]["message"].endswith("once inflated (Content-Encoding: gzip)")
    # The wire limit holds for gzip bodies too.
    r = post(client, "/v1/track", gzip.compress(os.urandom(LIMIT)),
             **{"Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert r.json()["response"]["message"].startswith(f"body: at most {LIMIT} bytes")
    assert collector.processed() == 0


def test_inflating_a_bomb_holds_no_more_than_the_limit() -> None:
    tracemalloc.start()
    try:
        gunzip = Gunzip(LIMIT)
        data = bomb()
        with pytest.raises(ApiError) as refused:
            for start in range(0, len(data), 65_536):
                gunzip.feed(data[start:start + 65_536])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413
    assert gunzip.size <= LIMIT + 1
    assert peak < 4 * LIMIT  # 200 MB inflated would need 400 times that


@pytest.mark.parametrize(("content", "encoding", "status", "message"), [
    (b"{\"anonymousId\": \"a\"}", "gzip", 400, "body: not valid gzip (Error -3 while "
                                                "decompressing data: incorrect header check)"),
    (gz({"anonymousId": "a", "event": "E"})[:-12], "gzip", 400,
     "body: not valid gzip (the stream ends before its last member does)"),
    (gz({"anonymousId": "a", "event": "E"}), "br", 415,
     "content-encoding: 'br' is not supported; send the body as it is or gzip it "
     "(Content-Encoding: gzip)"),
    (gzip.compress(b"", mtime=0), "gzip", 400, "body: is empty; send a JSON object"),
])
def test_bad_encodings_get_clear_errors(served: Served,
                                        content: bytes, encoding: str, status: int,
                                        message: str) -> None:
    collector, client = served
    r = post(client, "/v1/track", content, **{"Content-Encoding": encoding})
    assert r.status_code == status
    assert r.json()["response"]["message"] == message
    assert r.json()["message"] == message
    assert collector.processed() == 0


def test_identity_encoding_is_the_plain_body(served: Served) -> None:
    _, client = served
    body = json.dumps({"anonymousId": "a", "event": "E"}).encode()
    assert post(client, "/v1/track", body, **{"Content-Encoding": "identity"}).status_code == 200


def test_the_user_api_reads_gzip_too(served: Served) -> None:
    collector, client = served
    r = client.post("/v1/accounts/shop/events", content=gz({"userId": "c1", "name": "Paid"}),
                    headers={"Authorization": "Bearer shop-key", "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert collector.processed() == 1


def test_gunzip_is_fed_in_pieces_of_any_size() -> None:
    body = json.dumps(batch_of(50)).encode()
    packed = gzip.compress(body)
    for step in (1, 7, 4096):
        gunzip = Gunzip(LIMIT)
        out = b"".join(gunzip.feed(packed[i:i + step]) for i in range(0, len(packed), step))
        gunzip.finish()
        assert out == body
