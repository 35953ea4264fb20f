"""Functions: messages/s delivered through an identity transformEvent vs the same delivery
without a function, same run, same sink (bench/delivery.py's run_ours), one message per
request and batched 100 per request; and the function destination sending what the webhook
sends (the routed payload as JSON, one per request) against the webhook plugin. What it
costs: one round trip to the function process per leased batch, the payloads encoded to JSON
and back, and a V8 call per message."""

from __future__ import annotations

from bench.common import Outcome, Row, Settings, interleaved, sink
from bench.delivery import BATCH, run_ours

IDENTITY = {"code": "function transformEvent(event, metadata) { return event; }"}
#: the function destination doing what the webhook does: the routed payload POSTed as JSON
POST_EVENT = """
function onEvent(event, settings) {
  const {rendered, ...body} = event;
  return {url: settings.url, body};
}
"""


def bench(settings: Settings) -> Outcome:
    single = settings.size(4_000, 100)
    batched = settings.size(40_000, 400)
    with sink() as url:
        r1 = interleaved({
            "function": lambda: run_ours(url, single, batch=False, fast=True,
                                         transform=IDENTITY),
            "none": lambda: run_ours(url, single, batch=False, fast=True),
        }, settings.repeats)
        rb = interleaved({
            "function": lambda: run_ours(url, batched, batch=True, fast=True,
                                         transform=IDENTITY),
            "none": lambda: run_ours(url, batched, batch=True, fast=True),
        }, settings.repeats)
        rd = interleaved({
            "function": lambda: run_ours(url, single, batch=False, fast=True,
                                         function=POST_EVENT),
            "webhook": lambda: run_ours(url, single, batch=False, fast=True),
        }, settings.repeats)
    rows = [
        Row("functions", "identity transform, 1 msg/request", "msg/s", r1["function"],
            r1["none"], "no function"),
        Row("functions", f"identity transform, batched ({BATCH}/request)", "msg/s",
            rb["function"], rb["none"], "no function"),
        Row("functions", "function destination (onEvent POSTs the event), 1 msg/request",
            "msg/s", rd["function"], rd["webhook"], "webhook plugin"),
    ]
    return Outcome(rows=rows, detail={
        "single_messages": single, "batched_messages": batched,
        "single": {"function_msg_per_s": r1["function"], "none_msg_per_s": r1["none"],
                   "ratio": r1["function"] / r1["none"]},
        "batched": {"function_msg_per_s": rb["function"], "none_msg_per_s": rb["none"],
                    "ratio": rb["function"] / rb["none"]},
        "destination": {"function_msg_per_s": rd["function"],
                        "webhook_msg_per_s": rd["webhook"],
                        "ratio": rd["function"] / rd["webhook"]},
    })
