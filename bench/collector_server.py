"""The collector under test and the bare ASGI handler, on ONE uvicorn server in its own process.

    python -m bench.collector_server DB_PATH|OUTBOX_URL      prints "READY <port>"

/v1/... is Crossdock's collector (make_app: auth, rate limit, accept -> profile -> route ->
outbox commit, 4 webhook destinations). /bare/... is the baseline: an ASGI handler that reads
the body, parses the JSON and answers the same "queued" document, nothing else.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn

from bench.common import webhook_config, webhook_raw
from crossdock.collector import make_app
from crossdock.loader import parse_config
from crossdock.outbox import Outbox, open_outbox
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline
from crossdock.profiles import make_profile_hook

QUEUED = json.dumps({"response": {"status": "queued", "accepted": 1, "duplicates": 0,
                                  "errors": []}}).encode()


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    json.loads(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": QUEUED})


def dispatcher(collector: Any) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/bare/"):
            await bare(scope, receive, send)
        else:
            await collector(scope, receive, send)
    return app


def main(target: str) -> None:
    """`target`: a SQLite file, or a PostgreSQL outbox URL."""
    if "://" in target:
        loaded = parse_config(webhook_raw(target, "http://127.0.0.1:9/hook"),
                              base_dir=Path.cwd(), env={})
        outbox: Outbox = open_outbox(target)
    else:
        loaded = webhook_config(Path(target), "http://127.0.0.1:9/hook")
        outbox = SQLiteOutbox(Path(target))
    pipeline = Pipeline(loaded, outbox, make_profile_hook(loaded, outbox))
    app = dispatcher(make_app(loaded, pipeline))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1])
