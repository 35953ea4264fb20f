"""The function destination in the real engine: the operator's onEvent runs in the function
process before the plugin, the requests it returns are checked and sent by the engine to the
recording endpoint over loopback, and every way a function can fail dead-letters its own
message with the error while the next one is delivered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from function_helpers import API_KEY, loaded_with, row

from crossdock.daemon import run_daemon
from crossdock.delivery import deliver_once
from crossdock.errors import ConfigError
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.plugins.function.fake import RecordingFake
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer


def received(server: RunningServer, fake: RecordingFake) -> list[dict[str, Any]]:
    return list(server.call(lambda: list(fake.received)))


async def test_the_requests_it_returns_are_sent_and_null_sends_nothing(
    server: RunningServer, fake: RecordingFake, outbox: SQLiteOutbox, tmp_path: Path,
    clock: ManualClock,
) -> None:
    loaded = loaded_with(tmp_path, server.url)
    outbox.enqueue([row("a", "Order Completed"), row("b", "drop"), row("c", "split"),
                    row("d", "none")], now=clock.now)
    report = await deliver_once(loaded, outbox, clock=clock)

    got = received(server, fake)
    assert [(r["method"], r["path"], r["status"]) for r in got] == [
        ("POST", "/events", 200), ("POST", "/events", 200), ("PUT", "/events/2", 200)]
    first = got[0]
    # settings' values and secrets reach the function; a library's function is its to call
    assert first["body"] == {"name": "Order Completed", "user": "u1", "region": "eu",
                             "loud": "ORDER COMPLETED"}
    assert first["headers"]["x-api-key"] == API_KEY
    assert first["headers"]["x-source"] == "crm"
    assert first["headers"]["content-type"] == "application/json"
    # a string body is sent as text
    assert got[2]["body"] == "two"
    assert got[2]["headers"]["content-type"] == "text/plain; charset=utf-8"
    counts = outbox.counts()["crm"]
    assert (counts.delivered, counts.dead, counts.queued) == (4, 0, 0)
    r = report.destinations["crm"]
    assert (r.delivered, r.dead) == (2, 0)
    assert r.dropped == {"nothing to send (function returned null)": 2}


@pytest.mark.parametrize(("name", "error"), [
    ("throw", "onEvent failed: fn/crm.js:6: Error: no plan for m-throw <secret>"),
    ("loop", "onEvent failed: ran longer than its time limit"),
    ("huge", "onEvent failed: ran out of memory"),
    ("require", "ReferenceError: require is not defined"),
    ("fetch", "ReferenceError: fetch is not defined"),
    ("import", "onEvent returned a Promise: functions run synchronously"),
    ("undefined", "onEvent returned nothing (undefined): return a request"),
    ("number", "onEvent returned: a number, not a request (an object)"),
])
async def test_a_failing_function_dead_letters_its_message_and_the_next_is_delivered(
    server: RunningServer, fake: RecordingFake, outbox: SQLiteOutbox, tmp_path: Path,
    clock: ManualClock, name: str, error: str,
) -> None:
    loaded = loaded_with(tmp_path, server.url)
    outbox.enqueue([row(f"m-{name}", name), row("next", "Order Completed")], now=clock.now)
    report = await deliver_once(loaded, outbox, clock=clock)
    dead = outbox.row("crm", f"m-{name}")
    assert dead is not None
    assert dead["state"] == "dead" and dead["attempts"] == 1
    assert dead["last_error"].startswith("function fn/crm.js: ")
    assert error in dead["last_error"]
    assert API_KEY not in dead["last_error"]
    assert [r["body"]["name"] for r in received(server, fake)] == ["Order Completed"]
    assert report.destinations["crm"].dead == 1


@pytest.mark.parametrize(("name", "error"), [
    ("bad-url", "request.url: must be an absolute http or https URL"),
    ("relative-url", "request.url: must be an absolute http or https URL"),
    ("no-url", "request.url: required, an absolute http or https URL (got nothing)"),
    ("bad-method", "request.method: must be one of DELETE, GET, PATCH, POST, PUT (got "
                   "'FETCH')"),
    ("secret-method", "request.method: must be one of DELETE, GET, PATCH, POST, PUT (got "
                      "'<secret>')"),
    ("bad-header", "request.headers.X-Count: must be a string (got a number"),
    ("header-name", "request.headers: a header name is letters, digits"),
    ("header-break", "request.headers.X-Note: must not hold a line break or NUL"),
    ("host-header", "request.headers.Host: set by the engine"),
    ("get-body", "request.body: a GET request carries no body"),
    ("unknown-field", "request.uri: unknown field (did you mean 'url'?)"),
    ("second-bad", "request.url: must be an absolute http or https URL"),
])
async def test_a_malformed_request_is_a_dead_letter_naming_the_field_and_rule(
    server: RunningServer, fake: RecordingFake, outbox: SQLiteOutbox, tmp_path: Path,
    clock: ManualClock, name: str, error: str,
) -> None:
    loaded = loaded_with(tmp_path, server.url)
    outbox.enqueue([row(f"m-{name}", name), row("next", "Order Completed")], now=clock.now)
    await deliver_once(loaded, outbox, clock=clock)
    dead = outbox.row("crm", f"m-{name}")
    assert dead is not None and dead["state"] == "dead"
    assert dead["last_error"].startswith("rejected: ")
    assert error in dead["last_error"]
    names = [r["body"]["name"] for r in received(server, fake)
             if isinstance(r["body"], dict) and "name" in r["body"]]
    assert names == ["Order Completed"]


async def test_answers_are_classified_and_secrets_kept_out_of_errors(
    server: RunningServer, fake: RecordingFake, outbox: SQLiteOutbox, tmp_path: Path,
    clock: ManualClock,
) -> None:
    loaded = loaded_with(tmp_path, server.url)
    server.call(lambda: fake.script([503]))
    outbox.enqueue([row("retried", "Order Completed"), row("refused", "unauthorized"),
                    row("echoed", "echo-secret")], now=clock.now)
    await deliver_once(loaded, outbox, clock=clock)
    retried, refused = outbox.row("crm", "retried"), outbox.row("crm", "refused")
    assert retried is not None and retried["state"] == "queued"
    assert retried["last_error"].startswith("HTTP 503")
    assert refused is not None and refused["state"] == "dead"
    assert refused["last_error"] == 'HTTP 401: {"error": "missing or wrong X-Api-Key"}'
    # the key the function put in the URL reached the endpoint, not the outbox
    echoed = outbox.row("crm", "echoed")
    assert echoed is not None and echoed["state"] == "dead"
    assert API_KEY not in str(echoed["last_error"])


async def test_its_requests_pass_the_egress_guard(
    server: RunningServer, fake: RecordingFake, outbox: SQLiteOutbox, tmp_path: Path,
    clock: ManualClock,
) -> None:
    """A function may name any URL: the engine's guard refuses a private address unless the
    destination opts in, as for every destination (the row waits, retried)."""
    loaded = loaded_with(tmp_path, server.url, private=False)
    outbox.enqueue([row("inside", "Order Completed")], now=clock.now)
    await deliver_once(loaded, outbox, clock=clock)
    waiting = outbox.row("crm", "inside")
    assert waiting is not None and waiting["state"] == "queued"
    assert "127.0.0.1" in waiting["last_error"]
    assert received(server, fake) == []


async def test_the_daemon_survives_a_function_that_kills_its_v8_process(
    server: RunningServer, fake: RecordingFake, tmp_path: Path,
) -> None:
    """new Array(1e9).fill(0) is a fatal out of memory in V8 (it aborts the process it runs
    in): the function process ends, the message is dead, the daemon delivers the next."""
    loaded = loaded_with(tmp_path, server.url)
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(loaded, stop_event=stop, poll_interval=0.05))
    box = SQLiteOutbox(tmp_path / "crossdock.db")
    try:
        box.enqueue([row("fatal", "fatal"), row("loop", "loop")])
        for _ in range(600):
            states = [box.row("crm", m) for m in ("fatal", "loop")]
            if all(s is not None and s["state"] == "dead" for s in states):
                break
            await asyncio.sleep(0.05)
        box.enqueue([row("after", "Order Completed")])
        for _ in range(200):
            if received(server, fake):
                break
            await asyncio.sleep(0.05)
        assert not daemon.done()
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 30)
    fatal = box.row("crm", "fatal")
    assert fatal is not None and fatal["state"] == "dead"
    assert "the function process was ended" in fatal["last_error"]
    loop = box.row("crm", "loop")
    assert loop is not None and "ran longer than its time limit" in loop["last_error"]
    assert [r["body"]["name"] for r in received(server, fake)] == ["Order Completed"]
    box.close()


def test_config_names_what_is_wrong_with_the_function(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as syntax:
        loaded_with(tmp_path, "http://127.0.0.1:9", function="function onEvent(e) { return }}")
    assert any(p.startswith("destinations.crm.settings: fn/crm.js:1: SyntaxError")
               for p in syntax.value.problems), syntax.value.problems
    with pytest.raises(ConfigError) as unknown:
        loaded_with(tmp_path, "http://127.0.0.1:9", transform={"code": "function t(e) {}"})
    assert any(p.startswith("destinations.crm.transform: a destination function")
               for p in unknown.value.problems), unknown.value.problems


def test_crossdock_route_shows_the_payload_the_function_gets(tmp_path: Path) -> None:
    from crossdock.route.preview import preview_route

    loaded = loaded_with(tmp_path, "http://127.0.0.1:9")
    [preview] = preview_route(loaded, {"type": "track", "event": "Order Completed",
                                       "userId": "u1", "messageId": "m1"}, ["crm"])
    assert preview.decision == "routed"
    assert preview.payload is not None and preview.payload["event"] == "Order Completed"
    assert preview.planned == []
    assert "--entry onEvent" in preview.reason


#: a function that reads its answers: what each status means for this API
CLASSIFYING = """
function onEvent(event, settings) {
  return {url: `${settings.endpoint}/${event.event}`, headers: {'X-Api-Key': settings.apiKey}};
}
function classify(response, settings, metadata) {
  switch (response.status) {
    case 404: return 'delivered';                                  // already gone: done
    case 400: return response.body.includes('duplicate') ? 'delivered'
                     : {outcome: 'dead', reason: 'refused ' + metadata.messageId};
    case 401: return {outcome: 'retry', reason: 'key ' + settings.apiKey + ' rotating',
                      retryAfter: 30};
    case 409: return 'maybe';
    case 418: throw new Error('no teapots');
    case 429: while (true) {}
  }
  return null;                                                     // the usual reading
}
"""


@pytest.mark.parametrize(("reply", "state", "error"), [
    (200, "delivered", None),
    (404, "delivered", None),
    ({"status": 400, "body": "duplicate event"}, "delivered", None),
    ({"status": 400, "body": "bad"}, "dead", "refused m1"),
    (401, "queued", "key <secret> rotating"),
    (503, "queued", "HTTP 503"),
    (409, "dead", "function fn/crm.js: classify returned outcome 'maybe'; return one of "
                  "delivered, retry, dead"),
    (418, "dead", "function fn/crm.js: classify failed: fn/crm.js:13: Error: no teapots"),
    (429, "dead", "classify failed: ran longer than its time limit"),
])
async def test_its_classify_reads_the_answers(
    server: RunningServer, fake: RecordingFake, outbox: SQLiteOutbox, tmp_path: Path,
    clock: ManualClock, reply: Any, state: str, error: str | None,
) -> None:
    loaded = loaded_with(tmp_path, server.url, function=CLASSIFYING)
    server.call(lambda: fake.script([reply]))
    outbox.enqueue([row("m1", "signup")], now=clock.now)
    await deliver_once(loaded, outbox, clock=clock)
    got = outbox.row("crm", "m1")
    assert got is not None
    assert got["state"] == state
    if error is not None:
        assert error in got["last_error"], got["last_error"]
        assert API_KEY not in got["last_error"]
    if reply == 401:
        assert got["next_attempt_at"] - clock.now == pytest.approx(30, abs=1)


def test_a_function_without_on_event_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        loaded_with(tmp_path, "http://127.0.0.1:9", function="function onevent(e) {}")
    assert ("destinations.crm.settings: fn/crm.js defines no function onEvent"
            in "\n".join(refused.value.problems)), refused.value.problems


def test_an_edited_function_file_changes_the_destination_for_a_reload(tmp_path: Path) -> None:
    """The config names the file by the same path: its fingerprint is what tells a reload
    (SIGHUP) that the destination changed and its worker must restart on the new code."""
    first = loaded_with(tmp_path, "http://127.0.0.1:9").destination("crm")
    again = loaded_with(tmp_path, "http://127.0.0.1:9").destination("crm")
    edited = loaded_with(tmp_path, "http://127.0.0.1:9",
                         function=CLASSIFYING).destination("crm")
    assert first.function_fingerprint is not None
    assert first.function_fingerprint == again.function_fingerprint
    assert edited.function_fingerprint != first.function_fingerprint
