"""The loopback destination of the benchmarks: a minimal aiohttp server in its own process, so
client and server do not share one GIL. Our engine and the bare aiohttp baseline both send to it.

    python -m bench.sink [--record]      prints "READY <port>"

Every POST/PUT answers 200 {"ok": true}. With --record it also parses each JSON body and keeps
(messageId, arrival time) of every message in it (one message, or {"batch": [...]}), for the
latency benchmark. GET /_stats -> {"requests": n}; GET /_arrivals -> [[id, t], ...];
POST /_reset forgets both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from typing import Any

from aiohttp import web


def make_app(record: bool) -> web.Application:
    state: dict[str, Any] = {"requests": 0, "arrivals": []}
    ok = b'{"ok":true}'

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        state["requests"] += 1
        if record:
            now = time.time()
            data = json.loads(body)
            items = data["batch"] if isinstance(data, dict) and "batch" in data else [data]
            state["arrivals"] += [(item.get("messageId"), now) for item in items]
        return web.Response(body=ok, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": state["requests"]})

    async def arrivals(request: web.Request) -> web.Response:
        return web.json_response(state["arrivals"])

    async def reset(request: web.Request) -> web.Response:
        state["requests"] = 0
        state["arrivals"] = []
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=50_000_000)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", arrivals)
    app.router.add_post("/_reset", reset)
    app.router.add_route("POST", "/{tail:.*}", receive)
    app.router.add_route("PUT", "/{tail:.*}", receive)
    return app


async def main(record: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(make_app(record), access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    print(f"READY {sock.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true")
    asyncio.run(main(parser.parse_args().record))
