"""How the engine hands a request to the wire: straight to the client's transport when the
client has nothing to add, through `client.send` when it has hooks or auth."""

from __future__ import annotations

import gzip

import httpx
import pytest
from aiohttp import web

from crossdock.delivery.response_body import read_response
from crossdock.delivery.transport import _header_items, make_client, send
from crossdock.testing.fakeserver import serve


def _echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"got": request.content.decode()},
                          headers={"x-seen": request.headers.get("x-n", "")})


async def test_a_swapped_in_transport_receives_the_plugins_request() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_echo)) as client:
        request = httpx.Request("POST", "http://127.0.0.1:9/hook", content=b"hi",
                                headers={"x-n": "7"})
        response = await send(client, request)
    assert response.status_code == 201 and response.json() == {"got": "hi"}
    assert response.headers["x-seen"] == "7"
    assert response.request is request
    assert response.elapsed.total_seconds() >= 0


async def test_event_hooks_and_auth_still_run_through_client_send() -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.headers["authorization"])

    async with httpx.AsyncClient(transport=httpx.MockTransport(_echo), auth=("u", "p"),
                                 event_hooks={"request": [hook]}) as client:
        response = await send(client, httpx.Request("POST", "http://127.0.0.1:9/", content=b"x"))
    assert response.status_code == 201
    assert seen == ["Basic dTpw"]


def _gzip_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=gzip.compress(b"echo:" + body), status=202,
                            headers={"content-encoding": "gzip", "x-method": request.method,
                                     "x-query": request.query_string})

    async def plain(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, status=200)

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"part1,")
        await response.write(b"part2")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/r", handler)
    app.router.add_route("POST", "/plain", plain)
    app.router.add_route("POST", "/chunked", chunked)
    return app


@pytest.mark.parametrize("fast", [True, False], ids=["aiohttp", "httpcore"])
async def test_the_transport_reads_the_body_and_decodes_it(fast: bool) -> None:
    with serve(_gzip_app()) as server:
        async with make_client(fast=fast, allow_private_network=True) as client:
            request = httpx.Request("PUT", server.url + "/r", content=b"payload")
            request.extensions["timeout"] = httpx.Timeout(5.0).as_dict()
            response = await send(client, request)
    assert response.status_code == 202
    assert response.headers["x-method"] == "PUT"
    assert response.content == b"echo:payload"
    # Decoded already: the content is no longer what Content-Encoding describes.
    assert "content-encoding" not in response.headers
    assert response.reason_phrase == "Accepted"


async def test_plain_and_chunked_responses_keep_exactly_the_headers_the_server_sent() -> None:
    with serve(_gzip_app()) as server:
        async with make_client(allow_private_network=True) as client:
            plain = await send(client, httpx.Request("POST", server.url + "/plain", content=b"x"))
            chunked = await send(client, httpx.Request("POST", server.url + "/chunked"))
    assert plain.json() == {"ok": True}
    assert plain.headers["content-length"] == str(len(plain.content))
    assert chunked.content == b"part1,part2"
    assert "content-length" not in chunked.headers
    assert chunked.headers["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("raw", [
    [(b"A", b"1"), (b"a", b"2"), (b"Content-Type", b"x")],
    [(b"X-\xc3\x9c", b"v"), (b"x-y", b"\xc3\xa9")],
    [(b"x", b"\xe9"), (b"X", b"2")],
], ids=["ascii-repeated", "utf-8", "latin-1"])
def test_headers_reach_aiohttp_as_httpx_items_gives_them(raw: list[tuple[bytes, bytes]]) -> None:
    # ... and the encodings the engine decodes are asked for, unless the plugin chose.
    headers = httpx.Headers(raw)
    assert list(_header_items(headers).items()) == [*headers.items(),
                                                    ("accept-encoding", "gzip, deflate")]
    chosen = httpx.Headers([*raw, (b"Accept-Encoding", b"identity")])
    assert list(_header_items(chosen).items()) == list(chosen.items())


async def test_each_url_reaches_aiohttp_as_it_was_written_however_often_it_is_sent() -> None:
    # The transport keeps aiohttp's form of a URL by the httpx.URL object: one object sent
    # again, and another object to another path or query, each go where they say.
    with serve(_gzip_app()) as server:
        async with make_client(allow_private_network=True) as client:
            url = httpx.URL(server.url + "/r?a=1")
            for query in ("a=1", "a=1", "b=2"):
                target = url if query == "a=1" else url.copy_with(query=query.encode())
                response = await send(client, httpx.Request("PATCH", target, content=b"q"))
                assert response.content == b"echo:q"
                assert response.headers["x-query"] == query


def test_a_read_responses_headers_are_made_when_first_read_and_may_be_replaced() -> None:
    request = httpx.Request("GET", "https://api.example/")
    raw = [(b"Content-Type", b"text/plain"), (b"X-A", b"1"), (b"x-a", b"2")]
    response = read_response(200, raw, b"ok", request, {}, 100)
    assert response.headers.multi_items() == httpx.Headers(raw).multi_items()
    assert response.headers is response.headers  # made once
    assert response.headers.get_list("x-a") == ["1", "2"]
    response.headers = httpx.Headers({"x-b": "3"})
    assert dict(response.headers) == {"x-b": "3"}
    assert read_response(204, [], b"", request, {}, 100).headers.multi_items() == []
