"""The browser SDKs' paths over real HTTP (crossdock.collector.browser): analytics.js's short
paths and RudderStack's beacons take what the long paths take and answer as they answer; the
settings both SDKs load; crossdock.js. The requests are shaped as the SDKs' sources shape them
(docs/sources.md); tests/e2e/test_browser_sources.py runs the SDKs themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_helpers import WRITE_KEY, Running, basic, loaded_config, serve

from crossdock.collector import browser

PAGE = "http://127.0.0.1:9999"
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    write_keys = [{"key": WRITE_KEY, "origins": [PAGE]}, "wk-server"]
    with serve(loaded_config(tmp_path, write_keys=write_keys)) as r:
        yield r


@pytest.fixture
def client(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, timeout=10) as c:
        yield c


def _text(body: Any) -> bytes:
    return json.dumps(body).encode()


CALLS = [
    ("/v1/t", {"event": "Order Completed", "properties": {"total": 3}}),
    ("/v1/i", {"userId": "u-1", "traits": {"email": "ada@example.com"}}),
    ("/v1/p", {"name": "Pricing", "properties": {"path": "/pricing"}}),
    ("/v1/s", {"name": "Home"}),
    ("/v1/g", {"groupId": "acme", "traits": {"name": "ACME"}}),
    ("/v1/a", {"userId": "u-1", "previousId": "anon-1"}),
]


@pytest.mark.parametrize(("path", "fields"), CALLS, ids=[c[0] for c in CALLS])
def test_each_short_path_takes_its_type_with_the_key_in_the_body(
        client: httpx.Client, running: Running, path: str, fields: dict[str, Any]) -> None:
    """analytics.js before 1.84 sent the key in the body only (newer ones add a Basic
    header too), as text/plain."""
    kind = browser.SHORT_PATHS[path]
    body = {"writeKey": WRITE_KEY, "anonymousId": "anon-1", "messageId": f"m-{kind}",
            "type": kind, "context": {"page": {"url": f"{PAGE}/pricing"}}, **fields}
    r = client.post(path, headers={**TEXT, "Origin": PAGE}, content=_text(body))
    assert r.status_code == 200, r.text
    assert r.json()["response"] == {"status": "queued", "accepted": 1, "duplicates": 0,
                                    "errors": []}
    assert r.headers["access-control-allow-origin"] == PAGE
    assert running.processed() == 1


def test_short_batch_and_beacon_paths_take_a_batch(client: httpx.Client,
                                                   running: Running) -> None:
    message = {"type": "track", "anonymousId": "anon-1", "event": "Viewed"}
    r = client.post("/v1/b", headers=TEXT, content=_text(
        {"writeKey": WRITE_KEY, "sentAt": "2026-01-01T00:00:00Z",
         "batch": [{**message, "messageId": "b-1"}, {**message, "messageId": "b-2"}]}))
    assert (r.status_code, r.json()["response"]["accepted"]) == (200, 2), r.text
    # RudderStack's BeaconQueue: the key in the query, {batch, sentAt} as a text/plain Blob
    r = client.post(f"/beacon/v1/batch?writeKey={WRITE_KEY}", headers={**TEXT, "Origin": PAGE},
                    content=_text({"batch": [{**message, "messageId": "b-3"}],
                                   "sentAt": "2026-01-01T00:00:00Z"}))
    assert (r.status_code, r.json()["response"]["accepted"]) == (200, 1), r.text
    assert running.processed() == 3


def test_the_header_key_wins_and_the_body_key_is_not_kept(tmp_path: Path) -> None:
    """A present Authorization header is what counts, checked before the body is read; the
    body's writeKey is no field of a message, so no destination gets it."""
    hook = {"hook": {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/in",
                                                       "allow_private_network": True}}}
    body = {"writeKey": WRITE_KEY, "anonymousId": "anon-1", "event": "E", "messageId": "m-1"}
    with serve(loaded_config(tmp_path, hook)) as running, \
            httpx.Client(base_url=running.url) as client:
        r = client.post("/v1/t", headers={**basic("wrong"), **TEXT}, content=_text(body))
        assert (r.status_code, r.json()["message"]) == (401, "authorization: unknown write key")
        r = client.post("/v1/t", headers={**basic(WRITE_KEY), **TEXT}, content=_text(body))
        assert r.status_code == 200
        row = running.outbox.row("hook", "m-1")
    assert row is not None
    assert row["payload"]["event"] == "E"
    assert WRITE_KEY not in json.dumps(row["payload"])


@pytest.mark.parametrize(("body", "batch"), [
    (b'{"event": ', False),
    (b"[1, 2]", False),
    (_text({"anonymousId": "a"}), False),
    (_text({"event": "E"}), False),
    (_text({"anonymousId": "a", "event": "E", "userId": "x" * 101}), False),
    (_text({"batch": []}), True),
    (_text({"batch": [{"type": "track", "anonymousId": "a"}]}), True),
    (_text({"batch": "no"}), True),
])
def test_short_paths_answer_as_the_long_ones(client: httpx.Client, running: Running,
                                             body: bytes, batch: bool) -> None:
    """The same validation and the same answers: the short paths are the long paths'
    endpoints under another name."""
    pairs = [("/v1/batch", "/v1/b"), ("/v1/batch", "/beacon/v1/batch")] if batch else [
        ("/v1/track", "/v1/t")]
    for long, short in pairs:
        answers = [client.post(path, headers={**basic(), **TEXT}, content=body)
                   for path in (long, short)]
        assert answers[0].status_code >= 400
        assert [a.status_code for a in answers[1:]] == [answers[0].status_code]
        assert [a.json() for a in answers[1:]] == [answers[0].json()]
    assert running.processed() == 0


def test_without_any_key_the_401_says_where_to_put_one(client: httpx.Client) -> None:
    r = client.post("/v1/t", headers=TEXT, content=_text({"anonymousId": "a", "event": "E"}))
    assert (r.status_code, r.json()["message"]) == (
        401, "authorization: send the write key as the Basic auth user name, as a Bearer "
             "token, or as writeKey in the body")


def test_analytics_js_settings_point_back_at_the_collector(client: httpx.Client,
                                                           running: Running) -> None:
    r = client.get(f"/v1/projects/{WRITE_KEY}/settings", headers={"Origin": PAGE})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == PAGE
    host = running.url.removeprefix("http://")
    settings = r.json()
    assert settings["integrations"] == {"Segment.io": {
        "apiKey": WRITE_KEY, "apiHost": f"{host}/v1", "protocol": "http"}}
    # analytics.js reports its own usage to api.segment.io unless sampled out
    assert settings["metrics"] == {"sampleRate": 0}


def test_settings_use_the_public_url_behind_a_proxy(tmp_path: Path) -> None:
    loaded = loaded_config(tmp_path, public_url="https://collect.example.com/crossdock/")
    with serve(loaded) as running, httpx.Client(base_url=running.url) as client:
        r = client.get(f"/v1/projects/{WRITE_KEY}/settings")
    assert r.json()["integrations"]["Segment.io"] == {
        "apiKey": WRITE_KEY, "apiHost": "collect.example.com/crossdock/v1",
        "protocol": "https"}


@pytest.mark.parametrize("path", ["/sourceConfig/", "/sourceConfig"])
def test_rudderstack_source_config_loads_no_destinations(client: httpx.Client,
                                                         path: str) -> None:
    """As RudderStack v3 asks for it: the key in the query and as Basic auth."""
    r = client.get(path, params={"p": "npm", "v": "3.34.1", "build": "modern",
                                 "writeKey": WRITE_KEY, "lockIntegrationsVersion": "false",
                                 "lockPluginsVersion": "false"},
                   headers={**basic(), "Origin": PAGE})
    assert r.status_code == 200, r.text
    source = r.json()["source"]
    assert source["enabled"] is True
    assert source["destinations"] == []
    assert source["id"].startswith("crossdock-")
    assert source["config"]["statsCollection"] == {"errors": {"enabled": False},
                                                   "metrics": {"enabled": False}}
    assert r.headers["access-control-allow-origin"] == PAGE


def test_settings_refuse_unknown_keys_and_origins(client: httpx.Client) -> None:
    r = client.get("/v1/projects/nope/settings", headers={"Origin": PAGE})
    assert (r.status_code, r.json()["message"]) == (401, "authorization: unknown write key")
    r = client.get("/sourceConfig/", params={"writeKey": "nope"})
    assert r.status_code == 401
    r = client.get(f"/v1/projects/{WRITE_KEY}/settings",
                   headers={"Origin": "https://elsewhere.test"})
    assert r.status_code == 403
    assert "'https://elsewhere.test'" in r.json()["message"]
    r = client.get("/v1/projects/wk-server/settings", headers={"Origin": PAGE})
    assert r.status_code == 403


def test_crossdock_js_is_served(client: httpx.Client) -> None:
    r = client.get("/crossdock.js")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.content == browser.snippet().read_bytes()
    assert b"window.crossdock = crossdock" in r.content
