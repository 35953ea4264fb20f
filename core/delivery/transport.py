"""The HTTP clients the delivery engine sends with, and how a request reaches the wire.

Plugins build `httpx.Request`s; underneath, an aiohttp connection pool sends them, several
times faster than httpx's default async transport on many small requests. `fast=False` (or
CROSSDOCK_HTTP_TRANSPORT=httpx) sends through httpcore, httpx's own connection pool, for
comparison in benchmarks and as a way around a transport-specific problem.

Whichever transport sends, two things hold for every request (and `make_client` sets them up
per destination):

- the egress guard (crossdock.egress, crossdock.delivery.guard) checks each connection's
  address after DNS, and refuses loopback, private, link-local, metadata and other non-public
  addresses unless `allow_private_network`;
- at most `max_response_bytes` of an answer is read, then the connection is closed
  (crossdock.delivery.response_body).

`send` hands a request straight to the transport of a client `make_client` made (its public
`handle_async_request`) when the client has nothing for `AsyncClient.send` to do (no auth,
event hooks or redirects to follow); any other client gets `client.send`. The engine never
builds requests through the client, so its cookie jar is never read, and the rest of `send`
is a large share of a one-message request's CPU. A test can still swap in `httpx.MockTransport`,
and vcrpy (which patches the transports) still replays; what such a transport answers is read
up to the limit all the same.

A client `make_client` makes takes no proxy from the environment (HTTPS_PROXY, ...): httpx
mounts none beside a transport given to it, so every request goes to that transport.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import httpcore
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport as _AdapterTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from crossdock.delivery.guard import GuardedBackend, guarded_socket
from crossdock.delivery.response_body import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_BYTES,
    read_capped,
    read_response,
)

TRANSPORT_ENV = "CROSSDOCK_HTTP_TRANSPORT"
_HTTP11 = b"HTTP/1.1"
_CHUNK = 1 << 16
#: how many parsed URLs a transport keeps (`AiohttpTransport._url`)
_KNOWN_URLS = 256


def use_fast_transport() -> bool:
    """True unless CROSSDOCK_HTTP_TRANSPORT=httpx."""
    return os.environ.get(TRANSPORT_ENV, "aiohttp").strip().lower() != "httpx"


class EngineClient(httpx.AsyncClient):
    """The engine's `httpx.AsyncClient` (`make_client`): its transport guards egress unless
    told not to, and `send` reads at most `max_response_bytes` of an answer whichever
    transport the request takes (a proxy's too)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, *, timeout: float,
                 max_response_bytes: int) -> None:
        super().__init__(transport=transport, timeout=timeout, follow_redirects=False)
        #: the transport every request of this client goes to: given explicitly, so httpx
        #: mounts no proxy from the environment beside it (`send` hands requests to it)
        self.transport = transport
        self.max_response_bytes = max_response_bytes

    def direct_transport(self) -> httpx.AsyncBaseTransport | None:
        """`transport`, or None when `AsyncClient.send` has work to do for a request: auth,
        event hooks or redirects given to this client after `make_client` made it."""
        hooks = self.event_hooks
        if (hooks["request"] or hooks["response"] or self.auth is not None
                or self.follow_redirects or self.is_closed):
            return None
        return self.transport


class AiohttpTransport(_AdapterTransport):
    """httpx-aiohttp's transport, reading at most `max_response_bytes` of each response before
    returning it, on a connector that guards egress unless `allow_private_network`.

    The engine reads every response anyway; reading it here replaces the adapter's chunk
    iterator and the stream wrappers around it. TLS, proxies and the mapping of aiohttp
    errors to httpx's are the adapter's own."""

    def __init__(self, *, limits: httpx.Limits, allow_private_network: bool,
                 max_response_bytes: int) -> None:
        super().__init__(limits=limits)
        self.allow_private_network = allow_private_network
        self.max_response_bytes = max_response_bytes
        #: aiohttp's form of the URLs requests were sent to, by the identity of their
        #: httpx.URL (json_request hands every request to one URL the same object)
        self._urls: dict[int, tuple[httpx.URL, yarl.URL]] = {}

    def get_client(self) -> aiohttp.ClientSession:
        """The adapter's session, on a connector that hands every address it is about to
        connect to, after DNS, to the guard."""
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context,
            limit=self.limits.max_connections or 0,
            socket_factory=None if self.allow_private_network else guarded_socket)
        return aiohttp.ClientSession(connector=connector)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.proxy is not None or request.extensions.get("sni_hostname"):
            return await super().handle_async_request(request)  # read capped by `send`
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = request.stream
            request.headers.pop("transfer-encoding", None)  # aiohttp frames the body itself
        limit = self.max_response_bytes
        try:
            async with self.client.request(
                request.method, self._url(request.url), headers=_header_items(request.headers),
                data=data,
                allow_redirects=False, auto_decompress=False, compress=False,
                timeout=_client_timeout(timeout),
            ) as response:
                length = response.content_length
                if length is not None and length <= limit:
                    body = await response.read()
                else:
                    body, cut = await read_capped(response.content.iter_chunked(_CHUNK), limit)
                    if cut:
                        response.close()  # the rest is never read: drop the connection
        except Exception:
            # The adapter's mapping, entered only on an error (a generator-based context
            # manager around every request would cost on every request): the same httpx
            # exception, from the same aiohttp one.
            with map_aiohttp_exceptions():
                raise
        extensions: dict[str, Any] = {"http_version": _HTTP11}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return read_response(response.status, response.raw_headers, body, request,
                             extensions, limit)


    def _url(self, url: httpx.URL) -> yarl.URL:
        """`yarl.URL(str(url))`, what aiohttp makes of the text, built once per URL object:
        writing out an httpx.URL and parsing it again were 1.5 % of a small request's CPU,
        and the bare aiohttp client it is measured against hands aiohttp a parsed URL."""
        known = self._urls.get(id(url))
        if known is not None and known[0] is url:
            return known[1]
        parsed = yarl.URL(str(url))
        if len(self._urls) >= _KNOWN_URLS:  # URLs with a query of their own each time
            self._urls.clear()
        # The httpx.URL is kept with it, so its id is not reused while the entry lives.
        self._urls[id(url)] = (url, parsed)
        return parsed


class HttpcoreTransport(httpx.AsyncBaseTransport):
    """httpx's own connection pool (httpcore), reading at most `max_response_bytes` of each
    response, on a network backend that guards egress unless `allow_private_network`."""

    def __init__(self, *, limits: httpx.Limits, allow_private_network: bool,
                 max_response_bytes: int) -> None:
        self.max_response_bytes = max_response_bytes
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=None if allow_private_network else GuardedBackend())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        headers = request.headers.raw
        if "accept-encoding" not in request.headers:
            headers = [*headers, (b"Accept-Encoding", ACCEPT_ENCODING.encode())]
        with _httpx_errors(request):
            response = await self._pool.handle_async_request(httpcore.Request(
                request.method,
                httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
                headers=headers, content=request.stream, extensions=request.extensions))
            try:
                body, _ = await read_capped(response.aiter_stream(), self.max_response_bytes)
            finally:
                await response.aclose()  # closes the connection when the body was not done
        return read_response(response.status, response.headers, body, request,
                             dict(response.extensions), self.max_response_bytes)

    async def aclose(self) -> None:
        await self._pool.aclose()


#: httpcore's exceptions and the httpx ones they are raised as, most specific first
_HTTPCORE_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions as the httpx ones that `client.send` raises for them."""
    try:
        yield
    except Exception as exc:
        for caught, raised in _HTTPCORE_ERRORS:
            if isinstance(exc, caught):
                raise raised(str(exc), request=request) from exc
        raise


_NO_TIMEOUTS = aiohttp.ClientTimeout(sock_connect=None, sock_read=None, connect=None)


def _client_timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """aiohttp's form of httpx's timeout extension (the engine's requests carry none: its
    deadline covers the whole exchange)."""
    if not timeout:
        return _NO_TIMEOUTS
    return aiohttp.ClientTimeout(sock_connect=timeout.get("connect"),
                                 sock_read=timeout.get("read"), connect=timeout.get("pool"))


def _header_items(headers: httpx.Headers) -> dict[str, str]:
    """`dict(headers.items())` (lower-case names, repeated headers joined by ", "), which is
    what aiohttp made of an httpx.Headers; `items()` re-detects the encoding for every header
    it decodes, 5 % of a small request's CPU. Accept-Encoding is set when the plugin did not
    set it, to what `read_response` decodes (aiohttp would offer brotli when installed)."""
    raw = headers.raw
    try:
        # httpx's `encoding` is ASCII whenever every header decodes as ASCII, which is all
        # but never otherwise; asking it first costs a decoding pass of its own per request.
        out = _joined(raw, "ascii")
    except UnicodeDecodeError:
        out = _joined(raw, headers.encoding)
    out.setdefault("accept-encoding", ACCEPT_ENCODING)
    return out


def _joined(raw: list[tuple[bytes, bytes]], encoding: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw:
        name = key.lower().decode(encoding)
        text = value.decode(encoding)
        out[name] = f"{out[name]}, {text}" if name in out else text
    return out


def make_client(
    *, fast: bool | None = None, max_connections: int = 100, timeout: float = 10.0,
    allow_private_network: bool = False,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> EngineClient:
    """An `httpx.AsyncClient` on the aiohttp transport (or httpcore when not `fast`) that
    guards egress unless `allow_private_network` and reads at most `max_response_bytes` of an
    answer. The engine makes one per destination, from its delivery settings.

    Create it inside a running event loop (aiohttp binds its session to the loop) and close
    it with `await client.aclose()`.
    """
    if fast is None:
        fast = use_fast_transport()
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections)
    kind = AiohttpTransport if fast else HttpcoreTransport
    transport = kind(limits=limits, allow_private_network=allow_private_network,
                     max_response_bytes=max_response_bytes)
    return EngineClient(transport, timeout=timeout, max_response_bytes=max_response_bytes)


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send `request` and read the response, at most the client's `max_response_bytes` of it
    (1 MiB for a client not made by `make_client`); as `client.send(request)` does for the
    engine's requests (set the timeout in `request.extensions["timeout"]`)."""
    limit = DEFAULT_MAX_RESPONSE_BYTES
    transport = None
    if isinstance(client, EngineClient):
        limit = client.max_response_bytes
        transport = client.direct_transport()
    start = time.perf_counter()
    if transport is None:
        response = await client.send(request, stream=True)
    else:
        response = await transport.handle_async_request(request)
        response.request = request
    # The client's default_encoding, which `client.send` gave its response (a response
    # straight from the transport has httpx's default, as the engine's clients do).
    encoding = response.default_encoding
    if not (response.is_stream_consumed and response.is_closed):  # ours come read already
        try:
            raw, _ = await read_capped(response.aiter_raw(), limit)
        finally:
            await response.aclose()
        response = read_response(response.status_code, response.headers.raw, raw, request,
                                 dict(response.extensions), limit)
    response.elapsed = timedelta(seconds=time.perf_counter() - start)
    response.default_encoding = encoding
    return response
