"""The collector tests' harness: the collector under uvicorn on 127.0.0.1 in a thread, on a
real SQLite file (`serve`), its config (`loaded_config`) and credentials (`basic`, `bearer`)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from crossdock.collector import make_app
from crossdock.config import LoadedConfig
from crossdock.loader import parse_config
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline
from crossdock.plugin_manager import destination_types
from crossdock.profiles import ProfileStore

WRITE_KEY = "wk-test"
SHOP_KEY = "shop-key"
START = 1_700_000_000.0


def basic(key: str = WRITE_KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def bearer(key: str = SHOP_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def loaded_config(tmp_path: Path, destinations: dict[str, Any] | None = None,
                  **collector: Any) -> LoadedConfig:
    """The collector's config; `destinations` (crossdock.yaml's section) use the installed
    destination types."""
    raw = {
        "outbox": {"url": f"sqlite:///{tmp_path / 'crossdock.db'}"},
        "collector": {"write_keys": [WRITE_KEY],
                      "accounts": {"shop": {"keys": ["old-key", SHOP_KEY]}}, **collector},
        "destinations": destinations or {},
    }
    return parse_config(raw, base_dir=tmp_path, env={},
                        types=destination_types() if destinations else {})


class Running:
    def __init__(self, url: str, outbox: SQLiteOutbox, store: ProfileStore, app: Any) -> None:
        self.url = url
        self.outbox = outbox
        self.store = store
        self.app = app

    def processed(self) -> int:
        """Messages the profile step took (every resolved message counts once)."""
        with self.outbox.transaction() as db:
            row = db.execute("SELECT COALESCE(SUM(message_count), 0) FROM profiles").fetchone()
        return int(row[0])

    def show(self, ref: str) -> dict[str, Any] | None:
        with self.outbox.transaction() as db:
            return self.store.show(db, ref)


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """An ASGI app under uvicorn on a free port of 127.0.0.1, in a thread; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve(loaded: LoadedConfig, clock: Callable[[], float] = lambda: START,
          monotonic: Callable[[], float] = lambda: 0.0) -> Iterator[Running]:
    """The collector of `loaded` on its SQLite outbox and profile store, with these clocks."""
    outbox = SQLiteOutbox(loaded.outbox_url.removeprefix("sqlite:///"))
    store = ProfileStore(loaded.config.profiles, db=outbox.db, clock=clock)
    app = make_app(loaded, Pipeline(loaded, outbox, store), clock=clock, monotonic=monotonic)
    try:
        with serve_app(app) as url:
            yield Running(url, outbox, store, app)
    finally:
        outbox.close()


# -- group commit: the scenarios both engines run (test_collector_group_commit*.py) ---------

#: one request: its path, JSON body and x-request-id (or None)
Post = tuple[str, dict[str, Any], str | None]


def track_body(event: str, user: str | None = None) -> dict[str, Any]:
    return {"userId": user or f"u-{event}", "event": "Order Completed", "messageId": event}


_BAD = {"userId": "u-x", "type": "track"}  # no event
#: requests whose errors must be reported at each request's own indexes
POSTS_WITH_ERRORS: list[Post] = [
    ("/v1/batch", {"batch": [{**track_body("a0"), "type": "track"}, _BAD,
                             {**track_body("a2"), "type": "track"}]}, None),
    ("/v1/batch", {"batch": [_BAD, _BAD, {**track_body("b2"), "type": "track"}]}, None),
    ("/v1/track", {"userId": "u-c"}, None),
    ("/v1/batch", {"batch": [_BAD]}, None),
    ("/v1/track", track_body("d0"), None),
]
#: what POSTS_WITH_ERRORS leaves in the outbox
QUEUED_FROM_ERRORS = {"a0", "a2", "b2", "d0"}


def check_errors_at_own_indexes(answers: list[Any]) -> None:
    """The answers to POSTS_WITH_ERRORS, accepted in one group."""
    a, b, c, d, e = answers
    assert a.status_code == 200
    assert a.json()["response"]["accepted"] == 2
    assert [x["index"] for x in a.json()["response"]["errors"]] == [1]
    assert b.status_code == 200
    assert b.json()["response"]["accepted"] == 1
    assert [x["index"] for x in b.json()["response"]["errors"]] == [0, 1]
    assert c.status_code == 422 and "event" in c.json()["response"]["message"]
    assert d.status_code == 422
    assert [x["index"] for x in d.json()["response"]["errors"]] == [0]
    assert e.status_code == 200 and e.json()["response"]["accepted"] == 1


#: requests with request ids, sent in one group after one with "r-early" was accepted
POSTS_WITH_REQUEST_IDS: list[Post] = [
    ("/v1/track", track_body("early-again"), "r-early"),  # seen before the group
    ("/v1/track", track_body("one"), "r-twice"),
    ("/v1/track", track_body("two"), "r-twice"),  # the same id in the same group
    ("/v1/track", track_body("other"), "r-other"),
    ("/v1/track", track_body("plain"), None),
]


def check_request_id_dedup(answers: list[Any]) -> set[str]:
    """The answers to POSTS_WITH_REQUEST_IDS; the message ids the group accepted."""
    bodies = [a.json()["response"] for a in answers]
    assert [a.status_code for a in answers] == [200] * 5
    assert bodies[0] == {"status": "queued", "accepted": 0, "duplicates": 1, "errors": []}
    # exactly one of the two r-twice requests was accepted, the other is its repeat
    assert sorted(b["accepted"] for b in bodies[1:3]) == [0, 1]
    assert sorted(b["duplicates"] for b in bodies[1:3]) == [0, 1]
    assert bodies[3]["accepted"] == 1 and bodies[4]["accepted"] == 1
    return {"one" if bodies[1]["accepted"] else "two", "other", "plain"}
