"""Group commit on PostgreSQL (crossdock.collector.app, `_accept_group`): the requests of a
group are accepted in one transaction and ONE `Pipeline.accept_parts` call, so the profile
store takes one sorted lock set per transaction; each request still gets its own answer, a
failing request fails alone, and two collectors on one schema never deadlock."""

from __future__ import annotations

import concurrent.futures
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
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
from crossdock.dedup import Dedup, message_key
from crossdock.models import EnrichedMessage
from crossdock.outbox import open_outbox
from crossdock.outbox.base import Outbox, shared_sql
from crossdock.outbox.locks import lock_id
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.pipeline import Pipeline
from crossdock.profiles import ProfileStore

pytestmark = pytest.mark.postgres

DESTINATIONS = {"hook": {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/"},
                         "delivery": {"allow_private_network": True}}}
_track = track_body


@contextmanager
def _collector(tmp_path: Path, url: str, router: Any = None) -> Iterator[tuple[Outbox, Any]]:
    loaded = loaded_config(tmp_path, DESTINATIONS)
    outbox = open_outbox(url)
    store = ProfileStore(loaded.config.profiles, clock=lambda: START)
    app = make_app(loaded, Pipeline(loaded, outbox, store, router=router),
                   clock=lambda: START, monotonic=lambda: 0.0)
    try:
        yield outbox, app
    finally:
        outbox.close()


def _metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _queued(outbox: Outbox) -> list[str]:
    with outbox.transaction() as tx:
        return sorted(str(r[0]) for r in shared_sql(tx).execute(
            "SELECT message_id FROM outbox").fetchall())


def _post(url: str, post: Post) -> httpx.Response:
    path, body, request_id = post
    headers = basic() | ({"x-request-id": request_id} if request_id else {})
    with httpx.Client(base_url=url, timeout=60) as client:
        return client.post(path, headers=headers, json=body)


def _wait(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.01)


def _in_one_group(server: str, app: Any, url: str, posts: Sequence[Post]) -> list[httpx.Response]:
    """Send `posts` at once while a first request ("blocker") waits in its transaction for
    a message-id lock this test holds: they all queue for the next group. Then let go."""
    groups = app.state.collector.groups
    lock = lock_id(Dedup.lock_name(message_key("blocker")))
    with psycopg.connect(server, autocommit=True) as holder, \
            concurrent.futures.ThreadPoolExecutor(len(posts) + 1) as pool:
        holder.execute("SELECT pg_advisory_lock(%s)", [lock])
        try:
            blocker = pool.submit(_post, url, ("/v1/track", _track("blocker"), None))
            _wait(lambda: groups.in_flight == 1, lambda: "the blocker did not start")
            answers = [pool.submit(_post, url, post) for post in posts]
            _wait(lambda: len(groups.pending) == len(posts),
                  lambda: f"{len(groups.pending)} of {len(posts)} requests queued")
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", [lock])
        assert blocker.result().status_code == 200
        return [a.result() for a in answers]


@pytest.fixture
def pg(pg_server: str) -> Iterator[str]:
    with temporary_schema(pg_server, "crossdock_group") as url:
        yield url


def test_requests_arriving_together_share_one_transaction_and_all_commit(
        tmp_path: Path, pg_server: str, pg: str) -> None:
    with _collector(tmp_path, pg) as (outbox, app), serve_app(app) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        before = _metric(client, "crossdock_collector_accept_transactions_total")
        events = [f"m{i}" for i in range(12)]
        answers = _in_one_group(pg_server, app, url,
                                [("/v1/track", _track(e), None) for e in events])
        assert [a.status_code for a in answers] == [200] * len(events)
        assert all(a.json()["response"]["accepted"] == 1 for a in answers)
        # Answered after the commit: every message is in the outbox.
        assert _queued(outbox) == sorted([*events, "blocker"])
        # the blocker's transaction, then one for all twelve
        assert _metric(client, "crossdock_collector_accept_transactions_total") - before == 2
        assert _metric(client, "crossdock_collector_accept_fallbacks_total") == 0


def test_a_failing_request_fails_alone(tmp_path: Path, pg_server: str, pg: str) -> None:
    def route(enriched: EnrichedMessage, destination: Any) -> dict[str, Any]:
        if enriched.message["messageId"] == "m3":
            raise RuntimeError("template blew up")
        return enriched.message

    with _collector(tmp_path, pg, router=route) as (outbox, app), serve_app(app) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        events = [f"m{i}" for i in range(8)]
        answers = _in_one_group(pg_server, app, url,
                                [("/v1/track", _track(e), None) for e in events])
        codes = {e: a.status_code for e, a in zip(events, answers, strict=True)}
        assert codes.pop("m3") == 500
        assert set(codes.values()) == {200}
        assert _queued(outbox) == sorted({*events, "blocker"} - {"m3"})
        with outbox.transaction() as tx:
            users = {str(r[0]) for r in shared_sql(tx).execute(
                "SELECT user_id FROM profiles").fetchall()}
        # m3's profile changes went with it; the others' stayed
        assert users == {f"u-{e}" for e in [*events, "blocker"] if e != "m3"}
        assert _metric(client, "crossdock_collector_accept_fallbacks_total") == 1


def test_errors_are_reported_at_each_requests_own_indexes(
        tmp_path: Path, pg_server: str, pg: str) -> None:
    with _collector(tmp_path, pg) as (outbox, app), serve_app(app) as url:
        check_errors_at_own_indexes(_in_one_group(pg_server, app, url, POSTS_WITH_ERRORS))
        assert _queued(outbox) == sorted({*QUEUED_FROM_ERRORS, "blocker"})


def test_request_id_dedup_inside_a_group(tmp_path: Path, pg_server: str, pg: str) -> None:
    with _collector(tmp_path, pg) as (outbox, app), serve_app(app) as url:
        first = _post(url, ("/v1/track", _track("early"), "r-early"))
        assert first.json()["response"]["accepted"] == 1
        accepted = check_request_id_dedup(
            _in_one_group(pg_server, app, url, POSTS_WITH_REQUEST_IDS))
        assert _queued(outbox) == sorted({"early", "blocker", *accepted})
        # remembered in the group's transaction: a retry later is a duplicate
        again = _post(url, ("/v1/track", _track("other-retry"), "r-other"))
        assert again.json()["response"]["duplicates"] == 1


def test_two_collectors_accepting_the_same_people_never_deadlock(
        tmp_path: Path, pg: str) -> None:
    people = [f"p{i}" for i in range(5)]
    rng = random.Random(20)
    sent: list[str] = []

    def posts(round_: int, side: str) -> list[Post]:
        found: list[Post] = []
        for n in range(16):
            # batches naming several of the same few people in random orders (identifies
            # tie each person's anonymous id to them): lock sets that overlap across the
            # two collectors' transactions
            batch = []
            for k in range(rng.randint(1, 4)):
                event = f"{side}{round_}-{n}-{k}"
                sent.append(event)
                person = rng.choice(people)
                batch.append({"type": "identify", "userId": person,
                              "anonymousId": f"anon-{person}", "messageId": event}
                             if rng.random() < 0.3 else {**_track(event, person), "type": "track"})
            request_id = f"{side}{round_}-{n}" if rng.random() < 0.5 else None
            found.append(("/v1/batch", {"batch": batch}, request_id))
        return found

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with _collector(tmp_path / "a", pg) as (outbox, app_a), \
            _collector(tmp_path / "b", pg) as (_, app_b), \
            serve_app(app_a) as url_a, serve_app(app_b) as url_b, \
            concurrent.futures.ThreadPoolExecutor(32) as pool:
        requests = 0
        for round_ in range(5):
            work = [(url_a, p) for p in posts(round_, "a")] + \
                   [(url_b, p) for p in posts(round_, "b")]
            rng.shuffle(work)
            requests += len(work)
            answers = list(pool.map(lambda w: _post(*w), work))
            assert [a.status_code for a in answers] == [200] * len(work), \
                [a.text for a in answers if a.status_code != 200]
            assert all(a.json()["response"]["errors"] == [] for a in answers)
        transactions = 0.0
        for url in (url_a, url_b):
            with httpx.Client(base_url=url, timeout=30) as client:
                # a deadlock would have been retried request by request: none happened
                assert _metric(client, "crossdock_collector_accept_fallbacks_total") == 0
                transactions += _metric(client, "crossdock_collector_accept_transactions_total")
        assert transactions < requests, "no two requests shared a transaction"
        # every message committed once, by one collector or the other
        assert _queued(outbox) == sorted(sent)
