"""The one HTTP client the delivery engine sends with.

Plugins build `httpx.Request`s; underneath, the `httpx-aiohttp` transport sends them through an
aiohttp connection pool, several times faster than httpx's default async transport on many
small requests. `fast=False` (or CROSSDOCK_HTTP_TRANSPORT=httpx) uses httpx's own transport,
for comparison in benchmarks and as a way around a transport-specific problem.
"""

from __future__ import annotations

import os

import httpx

TRANSPORT_ENV = "CROSSDOCK_HTTP_TRANSPORT"


def use_fast_transport() -> bool:
    """True unless CROSSDOCK_HTTP_TRANSPORT=httpx."""
    return os.environ.get(TRANSPORT_ENV, "aiohttp").strip().lower() != "httpx"


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
    if fast:
        from httpx_aiohttp import AiohttpTransport

        transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
