"""Re-recording replaces a cassette instead of appending to it (vcrpy's "all" mode alone
keeps the old interactions and writes them again)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from aiohttp import web

from crossdock.testing.cassettes import RECORD_ENV, plugin_vcr
from crossdock.testing.fakeserver import serve


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _interactions(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [i["request"]["uri"] for i in data["interactions"]]


def test_a_re_record_replaces_the_cassette(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    app = web.Application()
    app.router.add_post("/{name}", _ok)
    monkeypatch.setenv(RECORD_ENV, "1")
    with serve(app) as server:
        for name in ("first", "second"):
            with plugin_vcr(tmp_path).use_cassette("one.yaml"):
                httpx.post(f"{server.url}/{name}", json={"n": name})
    assert _interactions(tmp_path / "one.yaml") == ["http://127.0.0.1/second"]

    monkeypatch.setenv(RECORD_ENV, "0")
    with plugin_vcr(tmp_path).use_cassette("one.yaml"):
        assert httpx.post("http://127.0.0.1:1/second", json={"n": "second"}).json() == {
            "ok": True}
