"""Helpers of the browser tests (test_browser_sources.py): the SDKs' browser bundles from the
npm registry, Debian's Chromium under Playwright, a server for the test pages, and the
collector as the `crossdock run` daemon, stopped and started again on its port.

The SDK bundles are the npm packages' own files at pinned versions, fetched with `npm pack`
at test time into pytest's cache folder (.pytest_cache/d/browser-sdks), not vendored: the
repository holds no minified third-party code, npm checks each tarball against the registry's
integrity hash, and moving to a new SDK version is one line here. Without npm the tests are
skipped, saying so; docs/sources.md records which versions were verified.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web
from e2e_helpers import start_crossdock, wait_for

from crossdock.testing.outbox_file import read_only

CHROMIUM = Path("/usr/bin/chromium")
#: headless, and nothing of Chromium's own traffic (updates, sync, field trials) besides the
#: pages'; the user data dir is a fresh one Playwright makes for each launch
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WRITE_KEY = "wk-browser"
TITLE = "Crossdock browser source"
START_TIMEOUT = 30
ARRIVAL_TIMEOUT = 60


@dataclass(frozen=True)
class NpmBundle:
    """One browser bundle of an npm package at a pinned version."""

    package: str
    version: str
    file: str

    def fetch(self, cache: Path) -> Path:
        """The bundle's path, `npm pack`ed and unpacked into `cache` the first time."""
        folder = cache / f"{self.package.strip('@').replace('/', '-')}-{self.version}"
        bundle = folder / "package" / self.file
        if bundle.is_file():
            return bundle
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"npm is not installed: the browser tests load {self.package}'s "
                        "bundle from the npm registry")
        folder.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", str(folder),
             f"{self.package}@{self.version}"],
            capture_output=True, text=True, timeout=300, check=False)
        assert packed.returncode == 0, f"npm pack {self.package}: {packed.stderr[-2000:]}"
        with tarfile.open(folder / packed.stdout.strip().splitlines()[-1]) as tar:
            tar.extractall(folder, filter="data")
        return bundle


#: analytics.js: the UMD build, `window.AnalyticsNext.AnalyticsBrowser`
SEGMENT = NpmBundle("@segment/analytics-next", "1.84.3", "dist/umd/index.js")
#: RudderStack's v3 SDK with its plugins in the bundle (the CDN build fetches them from
#: RudderStack's CDN): `window.rudderanalytics.RudderAnalytics`
RUDDERSTACK = NpmBundle("@rudderstack/analytics-js", "3.34.1",
                        "dist/npm/modern/bundled/umd/index.js")


# Each page loads one SDK and gives the test the same handles: `test.ready()` (resolves
# with the anonymous id once the SDK can send), `test.send(name)` (a page, an identify and a
# track call, not awaited) and `test.track(event)`.
_SEGMENT_PAGE = """
<script src="/sdk/segment.js"></script>
<script>
  const sdk = window.AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: WRITE_KEY, cdnURL: COLLECTOR}, OPTIONS);
  window.test = {
    ready: async () => { await sdk.ready(); return (await sdk.user()).anonymousId(); },
    send: (name) => { sdk.page(name); sdk.identify('u-segment', {plan: 'pro'});
                      sdk.track(name, {total: 42.5}); },
    track: (event) => { sdk.track(event); },
  };
</script>"""
_RUDDERSTACK_PAGE = """
<script src="/sdk/rudderstack.js"></script>
<script>
  const sdk = new window.rudderanalytics.RudderAnalytics();
  sdk.load(WRITE_KEY, COLLECTOR, {configUrl: COLLECTOR, logLevel: 'ERROR', ...OPTIONS});
  window.test = {
    ready: () => new Promise((resolve) => sdk.ready(() => resolve(sdk.getAnonymousId()))),
    send: (name) => { sdk.page(name); sdk.identify('u-rudderstack', {plan: 'pro'});
                      sdk.track(name, {total: 42.5}); },
    track: (event) => { sdk.track(event); },
  };
</script>"""
PAGES = {
    # one request a call: POST /v1/t, /v1/i, /v1/p (text/plain, Basic auth)
    "segment": _SEGMENT_PAGE.replace("OPTIONS", "{}"),
    # batches: POST /v1/b {writeKey, batch, sentAt}
    "segment-batching": _SEGMENT_PAGE.replace("OPTIONS", json.dumps({"integrations": {
        "Segment.io": {"deliveryStrategy": {"strategy": "batching",
                                            "config": {"size": 3, "timeout": 200}}}}})),
    # one request a call: POST /v1/page, /v1/identify, /v1/track (JSON, Basic auth)
    "rudderstack": _RUDDERSTACK_PAGE.replace("OPTIONS", "{}"),
    # beacons: POST /beacon/v1/batch?writeKey=... {batch, sentAt} (text/plain)
    "rudderstack-beacon": _RUDDERSTACK_PAGE.replace("OPTIONS", json.dumps(
        {"useBeacon": True, "beaconQueueOptions": {"maxItems": 3,
                                                   "flushQueueInterval": 200}})),
    "crossdock": """
<script src="COLLECTOR/crossdock.js"></script>
<script>
  crossdock.init({writeKey: WRITE_KEY, retryBase: 250, retryMax: 2000});
  window.test = {
    ready: async () => { crossdock.consent({analytics: true});
                         return crossdock.user().anonymousId; },
    send: (name) => { crossdock.page(name); crossdock.identify('u-crossdock', {plan: 'pro'});
                      crossdock.track(name, {total: 42.5}); },
    track: (event) => { crossdock.track(event); },
  };
</script>""",
}


def page_html(sdk: str, collector: str) -> str:
    script = PAGES[sdk].replace("COLLECTOR/", f"{collector}/")
    script = script.replace("WRITE_KEY", json.dumps(WRITE_KEY)).replace(
        "COLLECTOR", json.dumps(collector))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{TITLE}</title>"
            f"<link rel='icon' href='data:,'></head><body>{script}</body></html>")


def page_app(collector: dict[str, str], bundles: dict[str, Path]) -> web.Application:
    """The test pages (`/<sdk>.html`) and the SDK bundles (`/sdk/<sdk>.js`). `collector`
    holds the collector's URL under "url" once it runs."""

    async def html(request: web.Request) -> web.Response:
        sdk = request.match_info["sdk"]
        if sdk not in PAGES:
            raise web.HTTPNotFound()
        return web.Response(text=page_html(sdk, collector["url"]), content_type="text/html")

    async def bundle(request: web.Request) -> web.FileResponse:
        found = bundles.get(request.match_info["sdk"])
        if found is None:
            raise web.HTTPNotFound()
        return web.FileResponse(found, headers={"Content-Type": "text/javascript"})

    app = web.Application()
    app.router.add_get("/{sdk}.html", html)
    app.router.add_get("/sdk/{sdk}.js", bundle)
    return app


class CollectorDaemon:
    """`crossdock run` on a config in `folder`: the collector (port 0 the first time, its own
    port after), one write key whose pages may come from `origins`, and one webhook
    destination, so every accepted message gets an outbox row."""

    def __init__(self, folder: Path, origins: list[str], webhook_url: str) -> None:
        self.folder = folder
        self.origins = origins
        self.webhook_url = webhook_url
        self.port = 0
        self.url = ""
        self.log = folder / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.folder / "outbox.db"

    def start(self) -> None:
        config = self.folder / "crossdock.yaml"
        config.write_text(yaml.safe_dump({
            "outbox": {"url": "sqlite:///outbox.db"},
            "collector": {"port": self.port,
                          "write_keys": [{"key": WRITE_KEY, "origins": self.origins}]},
            "destinations": {"hook": {"plugin": "webhook", "settings": {
                "url": self.webhook_url, "allow_private_network": True}}},
        }))
        logged = self.log.read_text() if self.log.exists() else ""
        self.process = start_crossdock("run", "-c", str(config), log=self.log)
        address = re.compile(r"crossdock running: .*collector (http://\S+),")

        def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, self.tail()
            return address.search(self.log.read_text()[len(logged):]) is not None

        wait_for(listening, "the collector to listen", START_TIMEOUT, self.tail)
        found = address.search(self.log.read_text()[len(logged):])
        assert found is not None
        self.url = found.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, self.tail()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else "(no log)"

    def messages(self) -> list[dict[str, Any]]:
        """The payload of every outbox row, in arrival order (read-only, as e2e_helpers
        reads the outbox: the outbox's own code is what is under test)."""
        if not self.db.exists():
            return []
        with read_only(self.db) as db:
            if not db["outbox"].exists():  # the daemon has not made the table yet
                return []
            return [json.loads(row["payload"])
                    for row in db["outbox"].rows_where(select="payload", order_by="id")]

    def messages_of(self, anonymous_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages() if m.get("anonymousId") == anonymous_id]

    def answered(self, endpoint: str, status: int) -> int:
        """How many requests to `endpoint` (a route's path) the collector answered with
        `status`, by its /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        line = (f'crossdock_collector_requests_total{{endpoint="{endpoint}",'
                f'status="{status}"}} ')
        return sum(int(float(found.removeprefix(line))) for found in text.splitlines()
                   if found.startswith(line))

    def wait_for_messages(self, anonymous_id: str, count: int,
                          what: str) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.messages_of(anonymous_id)) >= count, what, ARRIVAL_TIMEOUT,
                 lambda: f"{self.messages_of(anonymous_id)}; log: {self.tail()}")
        return self.messages_of(anonymous_id)
