"""The console's pages over HTTP against a real SQLite file and a PostgreSQL outbox: what
they show, that no secret reaches a page or its HTML, that bad input gets a clear message
(never a 500), that roles and CSRF hold for every action, and that every action is logged
with who made it."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from console_helpers import (
    ADMIN_PASSWORD,
    HEADER_SECRET,
    VIEWER_PASSWORD,
    WEBHOOK_SECRET,
    console_config,
    console_server,
    csrf_of,
    logged_in,
)

from crossdock.config import LoadedConfig
from crossdock.console import ConsoleState
from crossdock.console.reads import PerMinute
from crossdock.console.snapshot import Snapshots
from crossdock.outbox import open_outbox
from crossdock.outbox.base import Outbox
from crossdock.pipeline import Pipeline
from crossdock.views import OutboxStatus, outbox_status

SECRETS = (WEBHOOK_SECRET, HEADER_SECRET, ADMIN_PASSWORD, VIEWER_PASSWORD)


def track(n: int, **extra: object) -> dict[str, object]:
    return {"type": "track", "event": f"Clicked {n}", "userId": f"user-{n}",
            "messageId": f"msg-{n}", **extra}


def kill(outbox: Outbox, destination: str, reason: str) -> list[int]:
    """Lease every queued row of a destination and make it a dead letter with `reason`."""
    items = outbox.lease(destination, 1000, 60, "test#1")
    for item in items:
        outbox.dead(item.id, reason, "test#1")
    return [item.id for item in items]


@pytest.fixture
def loaded(tmp_path: Path, outbox_url: str) -> LoadedConfig:
    """On each engine: `crossdock console` reads a PostgreSQL outbox as well."""
    return console_config(tmp_path, outbox_url)


@pytest.fixture
def outbox(loaded: LoadedConfig) -> Iterator[Outbox]:
    box = open_outbox(loaded.outbox_url)
    yield box
    box.close()


@pytest.fixture
def url(loaded: LoadedConfig, outbox: Outbox) -> Iterator[str]:
    Pipeline(loaded, outbox).accept([track(1), track(2), track(3)])
    # A reason quoting the signing secret, as a careless destination's error body might.
    kill(outbox, "hook", f"HTTP 400: bad signature for key {WEBHOOK_SECRET}")
    with console_server(loaded) as url:
        yield url


def assert_no_secret(html: str) -> None:
    for secret in SECRETS:
        assert secret not in html


def problems(html: str) -> list[str]:
    return re.findall(r'class="problem" role="alert">([^<]*)<', html)


def test_every_page_answers_without_a_secret(admin: httpx.Client) -> None:
    letter = re.search(r'/console/dead-letters/(\d+)"', admin.get("/console/dead-letters").text)
    assert letter
    for path in ("/console/", "/console/destinations", "/console/destinations/hook",
                 "/console/dead-letters", f"/console/dead-letters/{letter.group(1)}",
                 f"/console/dead-letters/dry-run?ids={letter.group(1)}", "/console/live",
                 "/console/live/message?id=msg-1",
                 "/console/tester?message=" + json.dumps(track(9))):
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert_no_secret(answer.text)
        assert "&lt;secret&gt;" in admin.get("/console/destinations/hook").text


def test_the_overview_shows_each_destination(admin: httpx.Client) -> None:
    html = admin.get("/console/").text
    row = re.search(r'<a href="/console/destinations/hook">hook</a>.*?</tr>', html, re.S)
    assert row
    cells = re.findall(r'<td class="num">(?:<a[^>]*>)?(\d+)', row.group(0))
    assert cells == ["0", "0", "0", "3"]  # queued, retrying, delivered, dead
    assert "bad signature for key &lt;secret&gt;" in html
    assert "accepted, last hour</small><b>3</b>" in html
    # htmx asks for the part it refreshes, not the whole page.
    part = admin.get("/console/", headers={"HX-Request": "true"}).text
    assert part.startswith('<div id="overview"') and "<html" not in part


def test_the_mapping_tester_shows_the_planned_request_redacted(admin: httpx.Client) -> None:
    html = admin.get("/console/tester", params={"message": json.dumps(track(7)),
                                                "destination": "hook"}).text
    assert 'data-destination="hook"' in html and ">routed<" in html
    assert "POST http://127.0.0.1:9/hook" in html
    assert "webhook-signature: &lt;secret&gt;" in html
    assert_no_secret(html)


@pytest.mark.parametrize(("params", "problem"), [
    ({"message": '{"type": "track",'}, "message: not valid JSON"),
    ({"message": '{"type": "track"}'}, "message: "),
    ({"message": "{}", "destination": "nope"}, "destination: no enabled destination 'nope'"),
    ({"pick": "never-kept"}, "pick: message 'never-kept' is not kept"),
])
def test_the_mapping_tester_names_bad_input(admin: httpx.Client, params: dict[str, str],
                                           problem: str) -> None:
    answer = admin.get("/console/tester", params=params)
    assert answer.status_code == 400
    assert any(p.startswith(problem.replace("'", "&#39;")) for p in problems(answer.text)), (
        problems(answer.text))


@pytest.mark.parametrize(("path", "status", "problem"), [
    ("/console/dead-letters?destination=nope", 400, "destination: no destination &#39;nope&#39;"),
    ("/console/dead-letters?since=yesterday", 400, "since: &#39;yesterday&#39; is neither"),
    ("/console/dead-letters/dry-run", 400, "dry run: nothing chosen"),
    ("/console/dead-letters/dry-run?ids=999999", 400, "ids: no dead letter with id 999999"),
    ("/console/dead-letters/dry-run?all=1&reason=no+such+reason", 400,
     "dry run: no dead letter matches the filter"),
    ("/console/dead-letters/dry-run?ids=abc", 400, "ids: a whole number from 0 to"),
    ("/console/dead-letters/424242", 404, "no dead letter with id 424242"),
    ("/console/destinations/nope", 404, "destination: no enabled destination &#39;nope&#39;"),
    ("/console/live?type=bogus", 400, "type: &#39;bogus&#39; is not a message type"),
    ("/console/live/message?id=never-kept", 404, "message &#39;never-kept&#39; is not kept"),
    ("/console/dead-letters/abc", 404, "/console/dead-letters/abc: no such page"),
    ("/console/live/stream?after=abc", 400,
     "after: a whole number from 0 to 9223372036854775807, got &#39;abc&#39;"),
])
def test_bad_input_gets_a_clear_message(admin: httpx.Client, path: str, status: int,
                                        problem: str) -> None:
    answer = admin.get(path)
    assert answer.status_code == status, answer.text
    assert any(p.startswith(problem) for p in problems(answer.text)), problems(answer.text)


def test_replay_after_a_dry_run(admin: httpx.Client, outbox: Outbox,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "crossdock.console.actions")
    dry = admin.get("/console/dead-letters/dry-run", params={"all": "1", "destination": "hook"})
    assert dry.status_code == 200
    assert "3 of 3 dead letters would be queued again" in dry.text
    assert outbox.counts()["hook"].dead == 3, "a dry run changed something"
    token = csrf_of(dry.text)
    done = admin.post("/console/dead-letters/replay", data={
        "csrf": token, "all": "1", "destination": "hook"})
    assert done.status_code == 200
    assert "Replayed 3 of 3 dead letters." in done.text
    counts = outbox.counts()["hook"]
    assert (counts.dead, counts.queued) == (0, 3)
    assert any("ada (admin) POST /console/dead-letters/replay -> 200; replayed 3 of 3"
               in r.getMessage() for r in caplog.records)
    again = admin.post("/console/dead-letters/replay", data={"csrf": token, "all": "1"})
    assert again.status_code == 400
    assert problems(again.text) == ["replay: no dead letter matches the filter: nothing to "
                                    "replay"]


def test_read_only_users_look_but_cannot_act(viewer: httpx.Client, outbox: Outbox,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "crossdock.console.actions")
    page = viewer.get("/console/destinations/hook")
    assert page.status_code == 200 and "Pause delivery" not in page.text
    # A dry run changes nothing: a viewer may see one, without the replay button.
    dry = viewer.get("/console/dead-letters/dry-run", params={"all": "1"})
    assert dry.status_code == 200 and 'id="replay"' not in dry.text
    token = csrf_of(page.text)
    for path, data in (("/console/destinations/hook/pause", {}),
                       ("/console/dead-letters/replay", {"all": "1"}),
                       ("/console/destinations/hook/test", {"message": "{}"})):
        answer = viewer.post(path, data={"csrf": token, **data})
        assert answer.status_code == 403
        assert "vic is read-only" in answer.text
    assert outbox.paused() == {} and outbox.counts()["hook"].dead == 3
    assert any("vic (read-only) POST /console/destinations/hook/pause -> 403; refused: "
               "read-only" in r.getMessage() for r in caplog.records)


def test_a_post_without_the_csrf_token_changes_nothing(admin: httpx.Client,
                                                       outbox: Outbox) -> None:
    for data in ({}, {"csrf": "forged"}):
        answer = admin.post("/console/destinations/hook/pause", data=data)
        assert answer.status_code == 403 and "CSRF" in answer.text
    assert outbox.paused() == {}


def test_pause_resume_and_a_test_message(admin: httpx.Client, outbox: Outbox,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "crossdock.console.actions")
    token = csrf_of(admin.get("/console/destinations/hook").text)
    assert admin.post("/console/destinations/hook/pause", data={"csrf": token}).status_code == 303
    assert outbox.paused()["hook"].by == "ada"
    assert "paused by ada" in admin.get("/console/").text
    assert "Resume delivery" in admin.get("/console/destinations/hook").text
    admin.post("/console/destinations/hook/resume", data={"csrf": token})
    assert outbox.paused() == {}

    sent = admin.post("/console/destinations/hook/test", data={
        "csrf": token, "message": json.dumps(track(50))})
    assert sent.status_code == 200 and "Queued test message <code>msg-50</code>" in sent.text
    row = outbox.row("hook", "msg-50")
    assert row is not None and row["state"] == "queued"
    bad = admin.post("/console/destinations/hook/test", data={"csrf": token, "message": "[1]"})
    assert bad.status_code == 400 and problems(bad.text) == ["message: must be a JSON object"]
    twice = admin.post("/console/destinations/hook/test", data={
        "csrf": token, "message": json.dumps(track(50))})
    assert twice.status_code == 400
    lines = [r.getMessage() for r in caplog.records]
    assert any("ada (admin) POST /console/destinations/hook/pause -> 303; paused delivery "
               "to hook" in line for line in lines)
    assert any("queued test message msg-50 for hook" in line for line in lines)


def test_live_events_stream_new_messages(admin: httpx.Client, loaded: LoadedConfig,
                                         outbox: Outbox) -> None:
    events: list[str] = []
    opened = threading.Event()

    def read() -> None:
        with admin.stream("GET", "/console/live/stream", params={"event": "wanted"},
                          timeout=30) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            opened.set()
            for line in answer.iter_lines():
                if line.startswith("data: ") and "msg-" in line:
                    events.append(line)
                    if any("msg-wanted" in e for e in events):
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10)
    Pipeline(loaded, outbox).accept([track(60, event="other"),
                                     {**track(61, event="wanted"), "messageId": "msg-wanted"}])
    reader.join(20)
    assert not reader.is_alive(), "the stream sent nothing"
    assert [e for e in events if "msg-" in e and "<small>" in e] == [
        e for e in events if "msg-wanted" in e and "<small>" in e], "the filter let others by"
    decisions = admin.get("/console/live/message?id=msg-wanted",
                          headers={"HX-Request": "true"}).text
    assert 'data-destination="hook"' in decisions and ">queued<" in decisions


# -- the counts snapshot (crossdock.console.snapshot) -----------------------------------

#: background reads this far apart never happen during a test: what a page shows after an
#: outside change is the snapshot from before it, until an action reads a new one
NEVER = 3600.0


def wait_for(done: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def queued(html: str) -> str:
    """The hook row's queued cell on the overview."""
    row = re.search(r'<a href="/console/destinations/hook">hook</a>.*?</tr>', html, re.S)
    assert row, html
    return re.findall(r'<td class="num">(?:<a[^>]*>)?(\d+)', row.group(0))[0]


def counted_ago(html: str) -> int:
    """The snapshot's age the page shows, in seconds."""
    found = re.search(r'id="counted">Counted (?:(\d+)m )?(\d+)s ago', html)
    assert found, html
    return int(found.group(1) or 0) * 60 + int(found.group(2))


def rename(outbox: Outbox, old: str, new: str) -> None:
    with outbox.transaction() as tx:
        tx.execute(f"ALTER TABLE {old} RENAME TO {new}")


class TestCountsSnapshot:
    """Pages of a console whose counts are read only when a page or an action asks."""

    @pytest.fixture
    def url(self, loaded: LoadedConfig, outbox: Outbox) -> Iterator[str]:
        Pipeline(loaded, outbox).accept([track(1), track(2)])
        state = ConsoleState(loaded, open_outbox(loaded.outbox_url), counts_every=NEVER)
        with console_server(loaded, state) as url:
            yield url

    def test_pages_show_the_snapshot_with_its_age_until_an_action_reads_it_again(
            self, admin: httpx.Client, loaded: LoadedConfig, outbox: Outbox) -> None:
        first = admin.get("/console/").text
        assert queued(first) == "2" and counted_ago(first) < 60
        # Rows queued behind the console's back: the page shows the snapshot it has, and says
        # how old it is (older with each look).
        Pipeline(loaded, outbox).accept([track(3), track(4), track(5)])
        wait_for(lambda: counted_ago(admin.get("/console/").text) >= 1, "the snapshot to age")
        later = admin.get("/console/").text
        assert queued(later) == "2" and "accepted, last hour</small><b>2</b>" in later
        assert outbox_status(loaded, outbox).destinations[0].counts.queued == 5  # status: exact

        token = csrf_of(admin.get("/console/destinations/hook").text)
        assert admin.post("/console/destinations/hook/pause",
                          data={"csrf": token}).status_code == 303
        after = admin.get("/console/").text
        assert queued(after) == "5" and "paused by ada" in after
        assert "accepted, last hour</small><b>5</b>" in after
        assert counted_ago(after) < counted_ago(later)
        page = admin.get("/console/destinations/hook").text
        assert "Resume delivery" in page and counted_ago(page) >= 0


    def test_the_pause_button_follows_a_pause_made_elsewhere(self, admin: httpx.Client,
                                                                 outbox: Outbox) -> None:
        assert "Pause delivery" in admin.get("/console/destinations/hook").text
        outbox.pause("hook", "ops-cli")  # `crossdock pause`, say: the snapshot is not read again
        page = admin.get("/console/destinations/hook").text
        assert "Resume delivery" in page and "by ops-cli" in page
        assert "paused by ops-cli" in admin.get("/console/destinations").text


    def test_a_failing_read_is_said_on_the_page_with_the_last_good_figures(
                self, admin: httpx.Client, outbox: Outbox) -> None:
        assert queued(admin.get("/console/").text) == "2"
        token = csrf_of(admin.get("/console/destinations/hook").text)
        rename(outbox, "outbox_stats", "outbox_stats_away")
        try:
            # The action itself works; the read after it fails, and the pages say so.
            assert admin.post("/console/destinations/hook/pause",
                              data={"csrf": token}).status_code == 303
            for path in ("/console/", "/console/destinations", "/console/destinations/hook"):
                answer = admin.get(path)
                assert answer.status_code == 200, (path, answer.text)
                [problem] = problems(answer.text)
                assert "counts could not be read" in problem and "outbox_stats" in problem
                assert "from the last read that worked" in problem
            assert queued(admin.get("/console/").text) == "2"
        finally:
            rename(outbox, "outbox_stats_away", "outbox_stats")
        admin.post("/console/destinations/hook/resume", data={"csrf": token})
        assert problems(admin.get("/console/").text) == []


def test_a_console_that_cannot_count_at_all_says_so(loaded: LoadedConfig, outbox: Outbox,
                                                    ) -> None:
    rename(outbox, "outbox_stats", "outbox_stats_away")
    try:
        state = ConsoleState(loaded, open_outbox(loaded.outbox_url), counts_every=NEVER)
        with console_server(loaded, state) as url:
            admin = logged_in(url, "ada", ADMIN_PASSWORD)
            answer = admin.get("/console/")
            assert answer.status_code == 200
            [problem] = problems(answer.text)
            assert "No figures to show yet" in problem and "outbox_stats" in problem
            assert "not counted yet" in answer.text
            assert admin.get("/console/destinations/hook").status_code == 200
            admin.close()
    finally:
        rename(outbox, "outbox_stats_away", "outbox_stats")


def test_reads_stop_when_nobody_looks_and_resume_on_the_next_look() -> None:
    reads: list[float] = []

    def read() -> tuple[OutboxStatus, PerMinute]:
        reads.append(time.monotonic())
        return OutboxStatus([], []), PerMinute([0], 60.0)

    snapshots = Snapshots(read, every=0.02, idle=0.2)
    try:
        assert not snapshots.running
        first = snapshots.get()  # the first look reads before it answers
        assert first.snapshot is not None and len(reads) == 1 and snapshots.running
        wait_for(lambda: len(reads) >= 3, "background reads while looked at")
        wait_for(lambda: not snapshots.running, "the reads to stop when nobody looks")
        stopped_at = len(reads)
        again = snapshots.get()  # read again before answering: the snapshot was not kept
        assert len(reads) == stopped_at + 1 and snapshots.running
        assert again.snapshot is not None and first.snapshot is not None
        assert again.snapshot.taken_at > first.snapshot.taken_at
    finally:
        snapshots.stop()
