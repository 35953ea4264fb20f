"""CORS per write key over real HTTP (crossdock.collector.cors): preflights, the headers of
the answers, and the 403 that names a refused origin. The collector runs under uvicorn on
127.0.0.1 on a real SQLite file (collector_helpers.py); what a real browser does with these
answers is tested in tests/e2e/test_browser_sources.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_helpers import Running, basic, loaded_config, serve

SHOP = "https://shop.example.com"
WEB_KEY = "wk-web"          # the shop's pages and any *.example.org page
SERVER_KEY = "wk-server"    # no origins: servers and apps only
COOKIE_KEY = "wk-cookies"   # one origin, with credentials
EVIL = "https://evil.example.net"
TRACK = {"anonymousId": "a-1", "event": "Viewed"}


def _config(tmp_path: Path, *extra: dict[str, Any]) -> Any:
    return loaded_config(tmp_path, write_keys=[
        {"key": WEB_KEY, "origins": [SHOP, "https://*.example.org"]},
        SERVER_KEY,
        {"key": COOKIE_KEY, "origins": ["https://account.example.com"],
         "allow_credentials": True},
        *extra,
    ])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with serve(_config(tmp_path)) as r:
        yield r


@pytest.fixture
def client(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, timeout=10) as c:
        yield c


def _preflight(client: httpx.Client, origin: str, path: str = "/v1/track",
               headers: str = "authorization,content-type,anonymousid") -> httpx.Response:
    return client.options(path, headers={"Origin": origin,
                                         "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": headers})


@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch", "/v1/t", "/v1/b",
                                  "/beacon/v1/batch", "/sourceConfig/",
                                  "/v1/projects/wk-web/settings"])
def test_a_preflight_from_an_allowed_origin_is_answered(client: httpx.Client,
                                                        path: str) -> None:
    r = _preflight(client, SHOP, path)
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == SHOP
    assert r.headers["access-control-allow-methods"] == "GET, POST"
    # named back: `*` would not cover Authorization
    assert r.headers["access-control-allow-headers"] == "authorization,content-type,anonymousid"
    assert r.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in r.headers
    assert "Origin" in r.headers["vary"]


def test_a_preflight_from_an_origin_no_key_lists_is_a_403_naming_it(
        client: httpx.Client) -> None:
    r = _preflight(client, EVIL)
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    assert r.json()["message"] == (
        "origin: 'https://evil.example.net' may not send with any write key; list it in a "
        "key's origins (collector.write_keys)")
    assert "access-control-allow-origin" not in r.headers


def test_a_preflight_without_an_origin_is_a_400(client: httpx.Client) -> None:
    r = client.options("/v1/track", headers={"Access-Control-Request-Method": "POST"})
    assert (r.status_code, r.json()["message"]) == (
        400, "origin: a CORS preflight (OPTIONS) needs the Origin header")


def test_a_pattern_allows_subdomains_but_not_the_domain(client: httpx.Client) -> None:
    assert _preflight(client, "https://eu.shop.example.org").status_code == 204
    assert _preflight(client, "https://example.org").status_code == 403
    assert _preflight(client, "http://eu.example.org").status_code == 403


def test_an_allowed_origin_reads_the_answer(client: httpx.Client, running: Running) -> None:
    r = client.post("/v1/track", headers={**basic(WEB_KEY), "Origin": SHOP}, json=TRACK)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == SHOP
    assert r.headers["access-control-expose-headers"] == "Retry-After"
    assert "access-control-allow-credentials" not in r.headers
    assert running.processed() == 1


def test_an_origin_another_key_lists_is_refused_for_this_key(client: httpx.Client,
                                                             running: Running) -> None:
    """The server key lists no origin: a page may not use it, though the shop's origin may
    send with the web key. The 403 is readable by the page (the origin is one some key
    allows), so an SDK drops the message instead of retrying a network failure."""
    r = client.post("/v1/track", headers={**basic(SERVER_KEY), "Origin": SHOP}, json=TRACK)
    assert r.status_code == 403
    assert r.json()["message"] == (
        "origin: 'https://shop.example.com' may not send with this write key; list it in the "
        "key's origins (collector.write_keys)")
    assert r.headers["access-control-allow-origin"] == SHOP
    assert running.processed() == 0


@pytest.mark.parametrize("origin", [EVIL, "null"])
def test_an_origin_no_key_lists_is_refused_without_cors_headers(
        client: httpx.Client, running: Running, origin: str) -> None:
    # the key in the body, as text/plain: a request a browser sends without a preflight
    r = client.post("/v1/t", headers={"Origin": origin, "Content-Type": "text/plain"},
                    json={**TRACK, "writeKey": WEB_KEY})
    assert r.status_code == 403
    assert r.json()["message"].startswith(f"origin: {origin!r} may not send with this write key")
    assert "access-control-allow-origin" not in r.headers
    assert running.processed() == 0


def test_without_an_origin_the_key_alone_decides(client: httpx.Client,
                                                 running: Running) -> None:
    """Server SDKs and curl send no Origin: any configured key works, and the answer has no
    CORS headers."""
    for key in (SERVER_KEY, WEB_KEY):
        r = client.post("/v1/track", headers=basic(key), json=TRACK)
        assert r.status_code == 200, r.text
        assert "access-control-allow-origin" not in r.headers
    assert running.processed() == 2


def test_credentials_only_for_a_key_that_allows_them(client: httpx.Client) -> None:
    origin = "https://account.example.com"
    r = client.post("/v1/track", headers={**basic(COOKIE_KEY), "Origin": origin}, json=TRACK)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == origin
    assert r.headers["access-control-allow-credentials"] == "true"
    assert _preflight(client, origin).headers["access-control-allow-credentials"] == "true"


def test_star_answers_star_and_never_credentials(tmp_path: Path) -> None:
    """With a `*` key, any origin may send with that key (answered `*`), while an origin
    an exact pattern lists is still named back; the web key stays limited to its origins."""
    with serve(_config(tmp_path, {"key": "wk-any", "origins": ["*"]})) as running, \
            httpx.Client(base_url=running.url, timeout=10) as client:
        preflight = _preflight(client, EVIL)
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        r = client.post("/v1/track", headers={**basic("wk-any"), "Origin": EVIL}, json=TRACK)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers
        r = client.post("/v1/track", headers={**basic(WEB_KEY), "Origin": EVIL}, json=TRACK)
        assert r.status_code == 403
        r = client.post("/v1/track", headers={**basic("wk-any"), "Origin": SHOP}, json=TRACK)
        assert r.headers["access-control-allow-origin"] == SHOP
        assert running.processed() == 2


def test_paths_pages_do_not_call_get_no_cors_headers(client: httpx.Client) -> None:
    for path in ("/healthz", "/metrics", "/openapi.json"):
        r = client.get(path, headers={"Origin": SHOP})
        assert r.status_code == 200
        assert "access-control-allow-origin" not in r.headers
    r = client.post("/v1/accounts/shop/events", headers={"Origin": SHOP}, json={})
    assert "access-control-allow-origin" not in r.headers
