"""`crossdock demo`: the whole path on one machine, with nothing to set up.

It starts the contract fakes of the built-in destinations on 127.0.0.1, writes a crossdock.yaml
for them next to a fresh SQLite outbox, with the audience `high_value` (lifetime_value > 500)
synced on change to the Facebook Custom Audience and to Mailchimp tags, accepts a set of
sample messages (one of them malformed, to show how bad input is reported), delivers until
nothing is due, and prints what each destination received, what the audience destinations
hold at the end, and the outbox's delivery counts.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from crossdock.config import LoadedConfig
from crossdock.loader import load_config
from crossdock.plugin_manager import call_in_order, plugin_manager
from crossdock.testing.demo import DemoContext, DemoDestination

DEMO_DEADLINE = 60.0
#: requests printed per destination
SHOWN = 10
#: the demo's audience (docs/audiences.md), synced on change to every destination whose
#: DemoDestination says `audience=True` (the Facebook Custom Audience and Mailchimp tags)
DEMO_AUDIENCE = "high_value"
DEMO_CONDITION = "lifetime_value > 500"


#: (userId, email, first name, last name, lifetime value when first identified)
DEMO_PEOPLE = [
    ("u-ada", "ada@example.com", "Ada", "Lovelace", 420),
    ("u-grace", "grace@example.com", "Grace", "Hopper", 560),
    ("u-alan", "alan@example.com", "Alan", "Turing", 380),
]
#: the people who gave a mobile number and opted in to SMS (the SMS destinations send to them)
DEMO_SMS = {"u-grace": "+1 914 844 0001"}


def sample_messages(count: int) -> list[Any]:
    """Deterministic sample traffic: identifies, page views and events of a few people,
    one anonymous visitor, and one malformed message.

    Each completed order raises the buyer's `lifetime_value` (sent as `context.traits`), so
    the audience `lifetime_value > 500` changes as the messages arrive: Grace is in from her
    identify, Alan and Ada cross the threshold with an order, and Alan leaves it again when
    his last order is refunded (with the default 20 messages)."""
    people = DEMO_PEOPLE
    value = {user_id: start for user_id, _, _, _, start in people}
    last_order: dict[str, int] = {}
    messages: list[Any] = []
    for user_id, email, first, last, start in people:
        messages.append({
            "type": "identify", "userId": user_id, "messageId": f"demo-identify-{user_id}",
            "traits": {"email": email, "$FirstName": first, "$LastName": last, "plan": "pro",
                       "lifetime_value": start,
                       **({"phone": DEMO_SMS[user_id], "smsOptIn": True}
                          if user_id in DEMO_SMS else {})},
        })
    events = ["Product Viewed", "Order Completed", "Product Viewed", "Signed Up"]
    for i in range(max(0, count - len(messages) - 3)):
        user_id = people[i % len(people)][0]
        if i % 4 == 3:
            messages.append({"type": "page", "userId": user_id, "name": "Pricing",
                             "messageId": f"demo-page-{i}", "properties": {"path": "/pricing"}})
            continue
        event = events[i % len(events)]
        message: dict[str, Any] = {
            "type": "track", "userId": user_id, "event": event, "messageId": f"demo-track-{i}",
            "properties": {"sku": f"SKU-{i:03d}", "price": 10 + i, "currency": "EUR"},
        }
        if event == "Order Completed":
            price = last_order[user_id] = 100 + 10 * i
            value[user_id] += price
            message["properties"]["price"] = price
            message["context"] = {"traits": {"lifetime_value": value[user_id]}}
        messages.append(message)
    refunded = people[2][0]
    value[refunded] -= last_order.get(refunded, 0)
    messages.append({
        "type": "track", "userId": refunded, "event": "Order Refunded",
        "messageId": "demo-refund", "properties": {"price": last_order.get(refunded, 0),
                                                   "currency": "EUR"},
        "context": {"traits": {"lifetime_value": value[refunded]}},
    })
    messages.append({"type": "track", "anonymousId": "anon-1", "event": "Product Viewed",
                     "messageId": "demo-anon", "properties": {"sku": "SKU-999"}})
    messages.append({"type": "track", "event": "Broken", "userId": "x" * 120})
    return messages


@contextmanager
def demo_destinations() -> Iterator[list[DemoDestination]]:
    """Start every plugin's demo fake (the `register_demo_destinations` hook, in the order the
    plugins were registered); yield the destinations that point at them."""
    with ExitStack() as stack:
        found: list[DemoDestination] = []
        call_in_order(plugin_manager().hook.register_demo_destinations,
                      register=found.append, context=DemoContext(stack))
        yield found


def write_config(folder: Path, destinations: list[DemoDestination]) -> Path:
    # The fakes listen on 127.0.0.1, which the engine's egress guard refuses unless a
    # destination opts in: every demo destination does.
    config: dict[str, Any] = {
        "outbox": {"url": "sqlite:///demo-outbox.db"},
        "collector": {"enabled": False},
        "destinations": {d.name: {**d.config, "delivery": {
            "backoff_base": 0.2, "backoff_max": 1, "allow_private_network": True,
            **d.config.get("delivery", {})}} for d in destinations},
    }
    fed = [d.name for d in destinations if d.audience]
    if fed:
        config["audiences"] = {DEMO_AUDIENCE: {"condition": DEMO_CONDITION,
                                               "destinations": fed, "sync_on_change": True}}
    path = folder / "crossdock.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def deliver_until_settled(loaded: LoadedConfig, deadline: float = DEMO_DEADLINE) -> None:
    """Deliver until nothing is queued or leased any more (retries included)."""
    from crossdock.delivery import deliver_once
    from crossdock.outbox import open_outbox

    outbox = open_outbox(loaded.outbox_url)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    try:
        while loop.time() < end:
            await deliver_once(loaded, outbox)
            counts = outbox.counts()
            if not any(c.queued or c.leased for c in counts.values()):
                return
            await asyncio.sleep(0.2)
    finally:
        outbox.close()


def run_demo(console: Console, *, messages: int = 20, keep: Path | None = None) -> None:
    from crossdock.outbox import open_outbox
    from crossdock.pipeline import build_pipeline

    with ExitStack() as stack:
        if keep is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crossdock-")))
        else:
            folder = keep
            folder.mkdir(parents=True, exist_ok=True)
        destinations = stack.enter_context(demo_destinations())
        config_path = write_config(folder, destinations)
        console.print(f"[bold]Crossdock demo[/bold] — config {config_path}", highlight=False)
        for d in destinations:
            console.print(f"  fake {d.config['plugin']:<18} for destination {d.name}",
                          highlight=False)
        fed = [d.name for d in destinations if d.audience]
        if fed:
            console.print(f"  audience {DEMO_AUDIENCE} ({DEMO_CONDITION}) → {', '.join(fed)}",
                          highlight=False)
        loaded = load_config(config_path)
        for warning in loaded.warnings:
            console.print(f"  [yellow]warning:[/yellow] {warning}", highlight=False)

        pipeline = build_pipeline(loaded)
        try:
            result = pipeline.accept(sample_messages(messages))
        finally:
            pipeline.close()
        console.print(f"\naccepted {len(result.accepted)} messages into {result.rows} outbox "
                      f"rows; {len(result.errors)} refused:", highlight=False)
        for index, problems in result.errors:
            console.print(f"  message {index}: {'; '.join(problems)}", highlight=False,
                          markup=False)

        console.print("\ndelivering …")
        asyncio.run(deliver_until_settled(loaded))

        for d in destinations:
            received = d.received()
            console.print(f"\n[bold]{d.name}[/bold] ({d.config['plugin']}) received "
                          f"{len(received)} requests", highlight=False)
            for entry in received[:SHOWN]:
                console.print(f"  {d.describe(entry)}"[:160], highlight=False, markup=False)
            if len(received) > SHOWN:
                console.print(f"  … and {len(received) - SHOWN} more", highlight=False)
            for line in d.state() if d.state is not None else []:
                console.print(f"  = {line}"[:160], highlight=False, markup=False)

        outbox = open_outbox(loaded.outbox_url)
        try:
            counts = outbox.counts()
        finally:
            outbox.close()
        table = Table("destination", "queued", "retrying", "delivered", "dead", "last error",
                      title="\ndelivery counts (crossdock status)")
        for d in destinations:
            c = counts.get(d.name)
            if c is None:
                table.add_row(d.name, "0", "0", "0", "0", "")
                continue
            table.add_row(d.name, str(c.queued), str(c.retrying), str(c.delivered), str(c.dead),
                          (c.last_error or "")[:60])
        console.print(table)
        if keep is not None:
            console.print(f"\nkept {folder}: try `crossdock status -c {config_path}`"
                          + (f" and `crossdock audiences list -c {config_path}`" if fed else ""),
                          highlight=False)


def main() -> None:  # pragma: no cover - `python -m crossdock.demo`
    run_demo(Console())


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["json", "run_demo", "sample_messages"]
