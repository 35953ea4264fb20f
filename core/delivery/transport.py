"""The one HTTP client the delivery engine sends with, and how a request reaches the wire.

Plugins build `httpx.Request`s; underneath, an aiohttp connection pool sends them, several
times faster than httpx's default async transport on many small requests. `fast=False` (or
CROSSDOCK_HTTP_TRANSPORT=httpx) uses httpx's own transport, for comparison in benchmarks and
as a way around a transport-specific problem.

`send` hands a request straight to the client's transport when the client has nothing for
`AsyncClient.send` to do (no auth, event hooks or redirects to follow): the engine never
builds requests through the client, so its cookie jar is never read, and the rest of `send`
was a third of a one-message request's CPU. Any transport works this way, so a test can still
swap in `httpx.MockTransport` or respx, and vcrpy (which patches the transports) still replays.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport as _AdapterTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

TRANSPORT_ENV = "CROSSDOCK_HTTP_TRANSPORT"
_HTTP11 = b"HTTP/1.1"


def use_fast_transport() -> bool:
    """True unless CROSSDOCK_HTTP_TRANSPORT=httpx."""
    return os.environ.get(TRANSPORT_ENV, "aiohttp").strip().lower() != "httpx"


class AiohttpTransport(_AdapterTransport):
    """httpx-aiohttp's transport, reading each response whole before returning it.

    The engine reads every response to the end anyway; one `read()` replaces the adapter's
    chunk iterator and the stream wrappers around it. Connection setup, TLS, proxies and
    the mapping of aiohttp errors to httpx's are the adapter's own."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.proxy is not None or request.extensions.get("sni_hostname"):
            return await super().handle_async_request(request)
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = request.stream
            request.headers.pop("transfer-encoding", None)  # aiohttp frames the body itself
        try:
            async with self.client.request(
                request.method, str(request.url), headers=_header_items(request.headers),
                data=data,
                allow_redirects=False, auto_decompress=False, compress=False,
                timeout=_client_timeout(timeout),
            ) as response:
                body = await response.read()
        except Exception:
            # The adapter's mapping, entered only on an error (a generator-based context
            # manager around every request cost 1 % of it): the same httpx exception, from
            # the same aiohttp one.
            with map_aiohttp_exceptions():
                raise
        extensions: dict[str, Any] = {"http_version": _HTTP11}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        headers = response.headers
        if "content-length" in headers and "content-encoding" not in headers:
            # The common case: nothing to decode, so the body is the content already.
            return _read_response(response.status, response.raw_headers, body, request,
                                  extensions)
        # Content-Encoding still applies: httpx decodes the raw bytes when they are read.
        return httpx.Response(response.status, headers=response.raw_headers,
                              stream=httpx.ByteStream(body), request=request,
                              extensions=extensions)


_NO_TIMEOUTS = aiohttp.ClientTimeout(sock_connect=None, sock_read=None, connect=None)


def _client_timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """aiohttp's form of httpx's timeout extension (the engine's requests carry none: its
    deadline covers the whole exchange)."""
    if not timeout:
        return _NO_TIMEOUTS
    return aiohttp.ClientTimeout(sock_connect=timeout.get("connect"),
                                 sock_read=timeout.get("read"), connect=timeout.get("pool"))


def _read_response(
    status: int, raw_headers: Any, body: bytes, request: httpx.Request,
    extensions: dict[str, Any],
) -> httpx.Response:
    """An httpx.Response for a body that needs no decoding, in the state `read()` leaves it
    (content set, stream consumed and closed). `Response(content=body)` got there through
    httpx's generators (decoder, chunkers) and a second look through the headers for the
    Content-Length already there: about 9 of the 11 us it took to build a small response."""
    response = httpx.Response(status, headers=raw_headers, stream=httpx.ByteStream(body),
                              request=request, extensions=extensions)
    response._content = body
    response._num_bytes_downloaded = len(body)
    response.is_stream_consumed = True
    response.is_closed = True
    try:
        if response.content is body:
            return response
    except httpx.ResponseNotRead:  # an httpx that keeps its content elsewhere
        pass
    return httpx.Response(status, headers=raw_headers, content=body, request=request,
                          extensions=extensions)


def _header_items(headers: httpx.Headers) -> dict[str, str]:
    """`dict(headers.items())` (lower-case names, repeated headers joined by ", "), which is
    what aiohttp made of an httpx.Headers; `items()` re-detects the encoding for every header
    it decodes, 5 % of a small request's CPU."""
    encoding = headers.encoding
    out: dict[str, str] = {}
    for key, value in headers.raw:
        name = key.lower().decode(encoding)
        text = value.decode(encoding)
        out[name] = f"{out[name]}, {text}" if name in out else text
    return out


def make_client(
    *, fast: bool | None = None, max_connections: int = 100, timeout: float = 10.0
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` on the aiohttp transport (or httpx's default when not `fast`).

    Create it inside a running event loop (aiohttp binds its session to the loop) and close
    it with `await client.aclose()`.
    """
    if fast is None:
        fast = use_fast_transport()
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections)
    transport: httpx.AsyncBaseTransport = (
        AiohttpTransport(limits=limits) if fast else httpx.AsyncHTTPTransport(limits=limits))
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)


def _direct(client: httpx.AsyncClient, request: httpx.Request) -> httpx.AsyncBaseTransport | None:
    """The transport to hand `request` to, or None when `client.send` has work to do."""
    hooks = client.event_hooks
    if (hooks["request"] or hooks["response"] or client.auth is not None
            or client.follow_redirects or client.is_closed):
        return None
    transport_for_url = getattr(client, "_transport_for_url", None)
    if transport_for_url is None:  # an httpx without it: take the long way
        return None
    transport: httpx.AsyncBaseTransport = transport_for_url(request.url)
    return transport


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send `request` and read the whole response; as `client.send(request)` does for the
    engine's requests (set the timeout in `request.extensions["timeout"]`)."""
    transport = _direct(client, request)
    if transport is None:
        return await client.send(request)
    start = time.perf_counter()
    response = await transport.handle_async_request(request)
    response.request = request
    if not (response.is_stream_consumed and response.is_closed):  # ours come read already
        try:
            await response.aread()
        finally:
            await response.aclose()
    response.elapsed = timedelta(seconds=time.perf_counter() - start)
    response.default_encoding = getattr(client, "_default_encoding", "utf-8")
    return response
