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
