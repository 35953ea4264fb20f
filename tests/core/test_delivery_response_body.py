"""How much of an answer the engine reads (crossdock.delivery.response_body): at most
`max_response_bytes`, then the connection is closed; a compressed body is inflated only that
far; the outcome is classified from what was read. Against a real server on 127.0.0.1 that
sends huge or endless bodies, on both transports, and a real `crossdock deliver` process whose
memory is measured."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from crossdock.delivery import deliver_once
from crossdock.delivery.response_body import DEFAULT_MAX_RESPONSE_BYTES, decoded
from crossdock.delivery.transport import make_client, send
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.mailchimp import MailchimpDestination
from crossdock.plugins.webhook import WebhookDestination
from crossdock.testing.fakeserver import RunningServer, serve

MiB = 1 << 20
CHUNK = b"x" * (64 << 10)
#: what "endless" sends at most, were nobody to stop reading: far past any limit
ENDLESS = 4 << 30
BOMB_INFLATED = 256 * MiB


def gzip_bomb(size: int) -> bytes:
    """A gzip stream of `size` zero bytes: a few hundred KB that inflate to `size`."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    return b"".join([*(packer.compress(zeros) for _ in range(size // MiB)), packer.flush()])


class HugeBodies:
    """A destination whose answers never end: `written` counts what it got onto the wire
    before the client went away (`ended` set then)."""

    def __init__(self) -> None:
        self.written = 0
        self.ended = False
        self.bomb = gzip_bomb(BOMB_INFLATED)

    async def endless(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        status = int(request.query.get("status", "200"))
        response = web.StreamResponse(status=status)
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(b"upstream exploded: " if status >= 500 else b"")
            while self.written < ENDLESS:
                await response.write(CHUNK)
                self.written += len(CHUNK)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.ended = True
        return response

    async def bombed(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=self.bomb, headers={"Content-Encoding": "gzip"})

    async def small(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/small", self.small)
        app.router.add_post("/endless", self.endless)
        app.router.add_post("/bomb", self.bombed)
        return app


@pytest.fixture
def huge() -> Iterator[tuple[HugeBodies, RunningServer]]:
    fake = HugeBodies()
    with serve(fake.app()) as server:
        yield fake, server


async def ended(fake: HugeBodies) -> None:
    """Wait until the server saw the client go (bounded by the test's own timeout)."""
    while not fake.ended:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("fast", [True, False], ids=["aiohttp", "httpcore"])
async def test_an_endless_body_is_read_to_the_limit_then_the_connection_closed(
    huge: tuple[HugeBodies, RunningServer], fast: bool,
) -> None:
    # A 200 with a 1 GB body took the daemon from 82 MB to 2.1 GB: it was read whole.
    fake, server = huge
    async with make_client(fast=fast, allow_private_network=True,
                           max_response_bytes=MiB) as client:
        response = await send(client, httpx.Request("POST", server.url + "/endless",
                                                    content=b"{}"))
        assert response.status_code == 200
        assert len(response.content) == MiB
        await asyncio.wait_for(ended(fake), 30)
    # What the server got onto the wire before the connection was closed: the limit and the
    # sockets' buffers, nothing like the gigabytes it would have sent.
    assert fake.written < 64 * MiB


@pytest.mark.parametrize("fast", [True, False], ids=["aiohttp", "httpcore"])
async def test_a_gzip_bomb_is_inflated_only_to_the_limit(
    huge: tuple[HugeBodies, RunningServer], fast: bool,
) -> None:
    fake, server = huge
    assert len(fake.bomb) < MiB  # on the wire: under the limit, so all of it is read
    async with make_client(fast=fast, allow_private_network=True,
                           max_response_bytes=MiB) as client:
        response = await send(client, httpx.Request("POST", server.url + "/bomb"))
    assert response.content == bytes(MiB)
    assert "content-encoding" not in response.headers


def test_decoding_stops_at_the_limit_and_leaves_other_encodings_alone() -> None:
    assert decoded(gzip_bomb(8 * MiB), "gzip", 1000) == bytes(1000)
    deflated = zlib.compress(b"abc" * 1000)
    assert decoded(deflated, "deflate", 10) == b"abcabcabca"
    assert decoded(deflated[2:], "deflate", 10) == b"abcabcabca"  # raw deflate, no header
    assert decoded(gzip_bomb(MiB)[:1000], "gzip", MiB) is not None  # a cut stream: its start
    assert decoded(b"\x8b\x00", "br", MiB) is None
    assert decoded(b"plain", "identity", MiB) == b"plain"


async def test_the_outcome_is_classified_from_the_start_of_the_body(
    tmp_path: Path, huge: tuple[HugeBodies, RunningServer],
) -> None:
    _, server = huge
    raw = {"outbox": {"url": "sqlite:///o.db"}, "collector": {"enabled": False},
           "destinations": {"hook": {"plugin": "webhook",
                                     "settings": {"url": f"{server.url}/endless?status=503"},
                                     "delivery": {"allow_private_network": True,
                                                  "max_response_bytes": 4096}}}}
    loaded = parse_config(raw, base_dir=tmp_path, env={})
    outbox = SQLiteOutbox(tmp_path / "o.db")
    try:
        outbox.enqueue([NewRow("hook", "m1", {"type": "track", "messageId": "m1",
                                              "userId": "u", "event": "E"})])
        report = await deliver_once(loaded, outbox)
    finally:
        outbox.close()
    hook = report.destinations["hook"]
    assert hook.retried == 1
    assert hook.last_error is not None
    assert hook.last_error.startswith("HTTP 503: upstream exploded: xxxx")


def test_each_plugin_says_how_much_it_needs_and_the_operator_may_change_it(
    tmp_path: Path,
) -> None:
    # A Mailchimp batch subscribe answers with every member's record (1.5 MB for 500): cut at
    # 1 MiB it would not parse, and the batch would be retried forever.
    assert WebhookDestination.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == MiB
    assert MailchimpDestination.max_response_bytes == 8 * MiB

    def limit(delivery: dict[str, Any]) -> int:
        raw = {"destinations": {"m": {"plugin": "mailchimp", "delivery": delivery,
                                      "settings": {"api_key": "k-us1", "list_id": "l"}}}}
        return parse_config(raw, base_dir=tmp_path, env={}).destination("m").max_response_bytes

    assert limit({}) == 8 * MiB
    assert limit({"max_response_bytes": 2 * MiB}) == 2 * MiB


def max_rss_of(config: Path) -> tuple[int, str]:
    """`crossdock deliver --once` run as its own process: its peak RSS in KiB, its output."""
    process = subprocess.Popen([sys.executable, "-m", "crossdock.cli", "deliver", "--once",
                                "-c", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, output
    return usage.ru_maxrss, output


def test_the_daemons_memory_stays_bounded_whatever_the_answer(
    tmp_path: Path, huge: tuple[HugeBodies, RunningServer],
) -> None:
    """The same delivery in a real process, to a destination answering 2 bytes and to one
    answering without end: the peak memory differs by the limit and buffers, not by the
    body (before, by all of it the server managed to send within the 10 s timeout)."""
    fake, server = huge
    peaks = {}
    for name, path in [("small", "/small"), ("endless", "/endless")]:
        folder = tmp_path / name
        folder.mkdir()
        config = folder / "crossdock.yaml"
        url = server.url + path
        config.write_text(yaml.safe_dump({
            "outbox": {"url": "sqlite:///o.db"}, "collector": {"enabled": False},
            "destinations": {"hook": {"plugin": "webhook", "settings": {"url": url},
                                      "delivery": {"allow_private_network": True}}}}))
        outbox = SQLiteOutbox(folder / "o.db")
        try:
            outbox.enqueue([NewRow("hook", "m1", {"type": "track", "messageId": "m1",
                                                  "userId": "u", "event": "E"})])
        finally:
            outbox.close()
        peaks[name], output = max_rss_of(config)
        assert output.startswith("delivered 1, retry later 0, dead 0 (1 requests)"), output
    assert fake.ended and fake.written < 64 * MiB
    assert (peaks["endless"] - peaks["small"]) * 1024 < 48 * MiB, peaks
