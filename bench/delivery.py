"""Delivery: messages from the outbox to the loopback sink (bench/sink.py, its own process),
one message per request and batched (100 per request), through `deliver_once` with our
transport (httpx API on the aiohttp transport) and with httpx's default transport, against a
bare aiohttp client sending the same requests (same bodies, same concurrency) to the same sink.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from bench.common import (
    Outcome,
    Row,
    Settings,
    elapsed,
    interleaved,
    sample_message,
    sink,
    webhook_raw,
)
from bench.common import webhook_config as config
from crossdock.delivery import deliver_once, make_client
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox

TARGET_SINGLE = 0.60
CONCURRENCY = 4
BATCH = 100
DEST = "hook-a"


def fill(db: Path, messages: int) -> None:
    outbox = SQLiteOutbox(db)
    # Each row carries its person, as the pipeline writes it: the lease is ordered.
    outbox.enqueue([NewRow(DEST, f"bench-{i}", message, f"p:{message['userId']}")
                    for i in range(messages) for message in [sample_message(i)]],
                   now=time.time() - 1)
    outbox.close()


def run_ours(url: str, messages: int, *, batch: bool, fast: bool,
             concurrency: int = CONCURRENCY,
             transform: dict[str, Any] | None = None,
             function: str | None = None) -> tuple[int, float]:
    """Items delivered per second by deliver_once (lease, build, send, classify, ack), with
    the destination's `transform:` when given, or as a `function` destination running
    `function` instead of the webhook (bench/functions.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "delivery.db"
        fill(db, messages)
        loaded = webhook_config_one(db, url, batch=batch, concurrency=concurrency,
                                    transform=transform, function=function)
        outbox = SQLiteOutbox(db)

        async def main() -> tuple[int, float]:
            # The sink is on 127.0.0.1: the client is opted into private networks.
            client = make_client(fast=fast, max_connections=100, allow_private_network=True)
            try:
                start = time.perf_counter()
                report = await deliver_once(loaded, outbox, client=client)
                seconds = elapsed(start)
            finally:
                await client.aclose()
            if report.delivered != messages:
                raise RuntimeError(f"delivery: delivered {report.delivered} of {messages} "
                                   f"({report.destinations[DEST].last_error})")
            return report.delivered, seconds

        try:
            return asyncio.run(main())
        finally:
            outbox.close()


def webhook_config_one(db: Path, url: str, *, batch: bool, concurrency: int,
                       transform: dict[str, Any] | None = None,
                       function: str | None = None) -> Any:
    if transform is None and function is None:
        return config(db, f"{url}/hook", names=(DEST,), batch=batch, concurrency=concurrency,
                      batch_size=BATCH)
    raw = webhook_raw(f"sqlite:///{db}", f"{url}/hook", names=(DEST,), batch=batch,
                      concurrency=concurrency, batch_size=BATCH)
    dest = raw["destinations"][DEST]
    if transform is not None:
        dest["transform"] = transform
    if function is not None:
        # One request per message: the function destination's batch size.
        dest.update(plugin="function", settings={"code": function,
                                                 "values": {"url": f"{url}/hook"}})
        dest["delivery"]["batch_size"] = 1
    return parse_config(raw, base_dir=db.parent, env={})


def run_bare(url: str, messages: int, *, batch: bool,
             concurrency: int = CONCURRENCY) -> tuple[int, float]:
    """The same bodies posted by `concurrency` aiohttp tasks; bodies are encoded in advance."""
    payloads = [sample_message(i) for i in range(messages)]
    if batch:
        bodies = [json.dumps({"batch": payloads[i:i + BATCH]}, separators=(",", ":")).encode()
                  for i in range(0, messages, BATCH)]
    else:
        bodies = [json.dumps(p, separators=(",", ":")).encode() for p in payloads]
    headers = {"content-type": "application/json"}
    target = yarl.URL(f"{url}/hook")  # parsed once: the fastest raw form of the same post

    async def main() -> tuple[int, float]:
        queue = list(reversed(bodies))
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def slot() -> None:
                while queue:
                    body = queue.pop()
                    async with session.post(target, data=body, headers=headers) as r:
                        await r.read()
                        if r.status != 200:
                            raise RuntimeError(f"bare aiohttp: HTTP {r.status}")

            start = time.perf_counter()
            await asyncio.gather(*(slot() for _ in range(concurrency)))
            return messages, elapsed(start)

    return asyncio.run(main())


def bench(settings: Settings) -> Outcome:
    single = settings.size(4_000, 100)
    batched = settings.size(40_000, 400)
    with sink() as url:
        r1 = interleaved({
            "ours": lambda: run_ours(url, single, batch=False, fast=True),
            "httpx": lambda: run_ours(url, single, batch=False, fast=False),
            "bare": lambda: run_bare(url, single, batch=False),
        }, settings.repeats)
        rb = interleaved({
            "ours": lambda: run_ours(url, batched, batch=True, fast=True),
            "httpx": lambda: run_ours(url, batched, batch=True, fast=False),
            "bare": lambda: run_bare(url, batched, batch=True),
        }, settings.repeats)
    ratio = r1["ours"] / r1["bare"]
    rows = [
        Row("delivery", "1 msg/request, our transport (aiohttp)", "req/s", r1["ours"], r1["bare"],
            "bare aiohttp", f">= {TARGET_SINGLE:.0%}", ratio >= TARGET_SINGLE),
        Row("delivery", "1 msg/request, httpx default transport", "req/s", r1["httpx"],
            r1["bare"], "bare aiohttp"),
        Row("delivery", f"batched ({BATCH}/request), our transport", "msg/s", rb["ours"],
            rb["bare"], "bare aiohttp"),
        Row("delivery", f"batched ({BATCH}/request), httpx default transport", "msg/s",
            rb["httpx"], rb["bare"], "bare aiohttp"),
    ]
    return Outcome(rows=rows, detail={
        "concurrency": CONCURRENCY, "single_messages": single, "batched_messages": batched,
        "single": {"ours_req_per_s": r1["ours"], "httpx_req_per_s": r1["httpx"],
                   "bare_req_per_s": r1["bare"], "ratio": ratio,
                   "httpx_ratio": r1["httpx"] / r1["bare"]},
        "batched": {"ours_msg_per_s": rb["ours"], "httpx_msg_per_s": rb["httpx"],
                    "bare_msg_per_s": rb["bare"], "ours_req_per_s": rb["ours"] / BATCH,
                    "ratio": rb["ours"] / rb["bare"], "httpx_ratio": rb["httpx"] / rb["bare"]},
    })
