"""Group commit (crossdock.collector.group) on SQLite: tracking requests that arrive while the
outbox is busy are accepted together in one transaction and one `Pipeline.accept_parts` call,
each answered after it committed; a request that fails inside a group fails alone."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from collector_helpers import (
    POSTS_WITH_ERRORS,
    POSTS_WITH_REQUEST_IDS,
    QUEUED_FROM_ERRORS,
    START,
    Post,
    basic,
    check_errors_at_own_indexes,
    check_request_id_dedup,
    loaded_config,
    serve_app,
    track_body,
)

from crossdock.collector import make_app
from crossdock.models import EnrichedMessage
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import AcceptResult, Pipeline
from crossdock.profiles import ProfileStore

REQUESTS = 12
DESTINATIONS = {"hook": {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/"},
                         "delivery": {"allow_private_network": True}}}


def _metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _accept_transactions(client: httpx.Client) -> float:
    return _metric(client, "crossdock_collector_accept_transactions_total")


_track = track_body


def _burst(url: str, posts: list[Post]) -> list[httpx.Response]:
    """The requests all at once, each on its own connection."""
    def post(one: Post) -> httpx.Response:
        path, body, request_id = one
        headers = basic() | ({"x-request-id": request_id} if request_id else {})
        with httpx.Client(base_url=url, timeout=30) as client:
            return client.post(path, headers=headers, json=body)

    with concurrent.futures.ThreadPoolExecutor(len(posts)) as pool:
        return list(pool.map(post, posts))


class CountingPipeline(Pipeline[ProfileStore]):
    """Counts its `accept_parts` calls (each is one profile prepare and flush)."""

    calls = 0

    def accept_parts(self, parts: Any, *, wake: bool = True) -> list[AcceptResult]:
        self.calls += 1
        return super().accept_parts(parts, wake=wake)


def _serve(tmp_path: Path, router: Any = None) -> tuple[SQLiteOutbox, Any]:
    loaded = loaded_config(tmp_path, DESTINATIONS)
    outbox = SQLiteOutbox(tmp_path / "crossdock.db")
    store = ProfileStore(loaded.config.profiles, db=outbox.db, clock=lambda: START)
    app = make_app(loaded, CountingPipeline(loaded, outbox, store, router=router),
                   clock=lambda: START, monotonic=lambda: 0.0)
    return outbox, app


def _queued(outbox: SQLiteOutbox) -> set[str]:
    with outbox.transaction() as db:
        return {str(r[0]) for r in db.execute("SELECT message_id FROM outbox").fetchall()}


def _held_while(outbox: SQLiteOutbox, app: Any, url: str,
                events: list[str] | list[Post]) -> list[httpx.Response]:
    """Hold the outbox (as a long commit would) until every request of the burst waits for
    it: the first group's in its thread, the rest queued for the next group. Then let go."""
    groups = app.state.collector.groups
    posts = [("/v1/track", _track(e), None) if isinstance(e, str) else e for e in events]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with outbox.lock:
            burst = pool.submit(_burst, url, posts)
            deadline = time.monotonic() + 30
            while groups.in_flight + len(groups.pending) < len(events):
                assert time.monotonic() < deadline, \
                    f"{groups.in_flight} in a transaction, {len(groups.pending)} queued"
                assert not burst.done(), burst.result()
                time.sleep(0.01)
        return burst.result()


def test_requests_arriving_together_share_transactions_and_all_commit(tmp_path: Path) -> None:
    outbox, app = _serve(tmp_path)
    try:
        with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            before = _accept_transactions(client)
            events = [f"m{i}" for i in range(REQUESTS)]
            answers = _held_while(outbox, app, url, events)
            assert [a.status_code for a in answers] == [200] * REQUESTS
            assert all(a.json()["response"]["accepted"] == 1 for a in answers)
            # Answered only after the commit: every message is in the outbox now.
            assert _queued(outbox) == set(events)
            # The first group holds the requests that arrived before its task ran (usually
            # the first alone), the next all the others: never a transaction per request,
            # nor an accept call (a profile read and write) per request.
            assert _accept_transactions(client) - before in (1, 2)
            assert app.state.collector.pipeline.calls in (1, 2)
    finally:
        outbox.close()


def test_a_request_that_fails_in_a_group_is_rolled_back_alone(tmp_path: Path) -> None:
    def route(enriched: EnrichedMessage, destination: Any) -> dict[str, Any]:
        if enriched.message["messageId"] == "m3":
            raise RuntimeError("template blew up")
        return enriched.message

    outbox, app = _serve(tmp_path, router=route)
    try:
        with serve_app(app) as url:
            events = [f"m{i}" for i in range(REQUESTS)]
            answers = _held_while(outbox, app, url, events)
            codes = {e: a.status_code for e, a in zip(events, answers, strict=True)}
            assert codes.pop("m3") == 500
            assert set(codes.values()) == {200}
            assert _queued(outbox) == set(events) - {"m3"}
            with outbox.transaction() as db:
                # m3's profile changes went with it; the others' stayed.
                users = {str(r[0]) for r in db.execute(
                    "SELECT user_id FROM profiles").fetchall()}
            assert users == {f"u-{e}" for e in events if e != "m3"}
    finally:
        outbox.close()


def test_workers_are_woken_after_the_group_commits(tmp_path: Path) -> None:
    # A worker woken inside the group's transaction found no rows yet (or waited on the
    # collector thread's hold of the outbox): each wake-up must find its rows committed.
    outbox, app = _serve(tmp_path)
    woken: list[tuple[set[str], set[str]]] = []

    def on_commit(destinations: set[str]) -> None:
        # another connection sees only what is committed
        reader = sqlite3.connect(tmp_path / "crossdock.db")
        try:
            seen = {str(r[0]) for r in reader.execute("SELECT message_id FROM outbox")}
        finally:
            reader.close()
        woken.append((destinations, seen))

    app.state.collector.pipeline.on_commit = on_commit
    try:
        with serve_app(app) as url:
            events = [f"m{i}" for i in range(REQUESTS)]
            answers = _held_while(outbox, app, url, events)
            assert [a.status_code for a in answers] == [200] * REQUESTS
        assert woken and all(d == {"hook"} for d, _ in woken)
        # the last wake-up comes after the last group's commit: every message is there
        assert woken[-1][1] == set(events)
        assert len(woken) in (1, 2)  # once per group, not once per request
    finally:
        outbox.close()


def test_errors_are_reported_at_each_requests_own_indexes(tmp_path: Path) -> None:
    outbox, app = _serve(tmp_path)
    try:
        with serve_app(app) as url:
            check_errors_at_own_indexes(_held_while(outbox, app, url, POSTS_WITH_ERRORS))
            assert _queued(outbox) == QUEUED_FROM_ERRORS
    finally:
        outbox.close()


def test_request_id_dedup_inside_a_group(tmp_path: Path) -> None:
    outbox, app = _serve(tmp_path)
    try:
        with serve_app(app) as url:
            first, = _burst(url, [("/v1/track", _track("early"), "r-early")])
            assert first.json()["response"]["accepted"] == 1
            accepted = check_request_id_dedup(
                _held_while(outbox, app, url, POSTS_WITH_REQUEST_IDS))
            assert _queued(outbox) == {"early", *accepted}
            # remembered in the group's transaction: a retry later is a duplicate
            again, = _burst(url, [("/v1/track", _track("other-retry"), "r-other")])
            assert again.json()["response"]["duplicates"] == 1
    finally:
        outbox.close()
