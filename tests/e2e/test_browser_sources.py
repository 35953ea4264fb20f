"""Browser sources in a real browser: Segment's analytics.js, RudderStack's JavaScript SDK and
crossdock.js in Debian's Chromium, driven by Playwright.

The test pages are served on one loopback origin (http://127.0.0.1:<port>, the one origin
the write key lists), the collector runs as the `crossdock run` daemon on another, with a
webhook destination so each accepted message gets an outbox row. The same pages served as
http://localhost:<port> are a different origin, one the key does not list. One browser, one
page server and one daemon serve the whole module; each test has a fresh browser context
(its own cookies and storage). The SDK bundles come from the npm registry (browser_helpers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from browser_helpers import (
    CHROMIUM,
    RUDDERSTACK,
    SEGMENT,
    TITLE,
    CollectorDaemon,
    page_app,
)
from e2e_helpers import wait_for
from playwright.sync_api import Browser, Page, Request

from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.plugins.webhook.fake import make_app as webhook_app
from crossdock.testing.fakeserver import serve

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Debian's Chromium is not installed ({CHROMIUM}): apt-get install chromium "
           "(.ci/run installs it)")

SDKS = ["segment", "rudderstack", "crossdock"]
#: the SDKs in each of their ways to send (browser_helpers.PAGES), and where a track goes
SENT_TO = {"segment": "/v1/t", "segment-batching": "/v1/b", "rudderstack": "/v1/track",
           "rudderstack-beacon": "/beacon/v1/batch", "crossdock": "/v1/batch"}
#: how long Playwright waits for a browser event before the test fails
EVENT_TIMEOUT_MS = 60_000


@dataclass
class Site:
    pages: str                # the origin the write key lists
    elsewhere: str            # the same pages on an origin it does not list
    collector: CollectorDaemon
    #: requests the pages made to anything but the two loopback origins
    third_party: list[str] = field(default_factory=list)
    #: requests of the current test's page that failed (a network error, or an answer the
    #: browser kept from the page for want of CORS headers)
    failed: list[str] = field(default_factory=list)

    def url(self, sdk: str, origin: str | None = None) -> str:
        return f"{origin or self.pages}/{sdk}.html"


@pytest.fixture(scope="module")
def bundles(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundles, kept between runs in pytest's cache (fetched each run under
    `-p no:cacheprovider`)."""
    if request.config.pluginmanager.has_plugin("cacheprovider"):
        cache = request.config.cache.mkdir("browser-sdks")  # type: ignore[attr-defined]
    else:
        cache = tmp_path_factory.mktemp("browser-sdks")
    return {"segment": SEGMENT.fetch(cache), "rudderstack": RUDDERSTACK.fetch(cache)}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         bundles: dict[str, Path]) -> Iterator[Site]:
    collector_url: dict[str, str] = {}
    with serve(webhook_app(WebhookFake())) as hook, \
            serve(page_app(collector_url, bundles)) as pages:
        daemon = CollectorDaemon(tmp_path_factory.mktemp("browser"), [pages.url],
                                 f"{hook.url}/in")
        daemon.start()
        collector_url["url"] = daemon.url
        try:
            yield Site(pages.url, f"http://localhost:{pages.port}", daemon)
        finally:
            daemon.kill()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A page in a fresh context, the collector up, every request to a host other than the
    two loopback origins recorded, and every failed request."""
    if site.collector.process is None:  # a failed outage test left it stopped
        site.collector.start()
    context = browser.new_context()
    opened = context.new_page()
    allowed = {urlsplit(site.pages).netloc, urlsplit(site.elsewhere).netloc,
               urlsplit(site.collector.url).netloc}

    def record(request: Request) -> None:
        if urlsplit(request.url).netloc not in allowed and \
                not request.url.startswith(("data:", "blob:")):
            site.third_party.append(request.url)

    site.failed = []
    opened.on("request", record)
    opened.on("requestfailed", lambda request: site.failed.append(
        f"{request.method} {request.url}: {request.failure}"))
    opened.set_default_timeout(EVENT_TIMEOUT_MS)
    yield opened
    context.close()


def by_type(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["type"]: m for m in messages}


@pytest.mark.parametrize("sdk", list(SENT_TO))
def test_calls_land_in_the_outbox_with_the_page_context(site: Site, page: Page,
                                                        sdk: str) -> None:
    url = site.url(sdk)
    accepted_before = site.collector.answered(SENT_TO[sdk], 200)
    page.goto(url)
    anonymous_id = page.evaluate("test.ready()")
    page.evaluate("test.send('Pricing')")
    messages = site.collector.wait_for_messages(
        anonymous_id, 3, f"{sdk}'s page, identify and track in the outbox")
    sent = by_type(messages)
    assert sorted(sent) == ["identify", "page", "track"], messages
    for message in messages:
        assert message["context"]["page"]["url"] == url, message
        assert message["context"]["page"]["title"] == TITLE, message
        assert message["context"]["userAgent"].startswith("Mozilla/5.0"), message
    assert sent["page"]["name"] == "Pricing"
    user = f"u-{sdk.split('-')[0]}"
    assert sent["identify"]["userId"] == user
    assert sent["identify"]["traits"]["plan"] == "pro"
    assert (sent["track"]["event"], sent["track"]["properties"]["total"]) == ("Pricing", 42.5)
    assert sent["track"]["userId"] == user  # the identify holds for what follows
    if sdk == "crossdock":
        assert {m["sessionId"] for m in messages} == {messages[0]["sessionId"]}
        assert all(m["context"]["consent"] == {"categoryPreferences": {"analytics": True}}
                   for m in messages)
    assert site.collector.answered(SENT_TO[sdk], 200) > accepted_before
    page.evaluate("test.ready()")  # a round trip: the failures so far are reported
    assert site.failed == []  # the page read every answer (CORS)
    # the settings loaded no destination into the page: it talked to nothing else
    assert site.third_party == []


@pytest.mark.parametrize("sdk", SDKS)
def test_a_reload_keeps_the_anonymous_id(site: Site, page: Page, sdk: str) -> None:
    page.goto(site.url(sdk))
    first = page.evaluate("test.ready()")
    page.reload()
    assert page.evaluate("test.ready()") == first
    page.evaluate("test.track('After reload')")
    messages = site.collector.wait_for_messages(first, 1, "the call after the reload")
    assert [m["event"] for m in messages] == ["After reload"]


#: the request each SDK's first call to the collector is, refused from an unlisted origin
REFUSED_AT = {"segment": "/v1/projects/{write_key}/settings",  # GET, a simple request
              "rudderstack": "/sourceConfig/",                # its preflight (Authorization)
              "crossdock": "/v1/batch"}                       # text/plain POST, no preflight


@pytest.mark.parametrize("sdk", SDKS)
def test_a_page_on_an_origin_the_key_does_not_list_is_refused(site: Site, page: Page,
                                                              sdk: str) -> None:
    """analytics.js's settings request and RudderStack's preflight get the 403, and the SDK
    never loads; crossdock.js's batch gets it and stays queued. The answer carries no
    Access-Control-Allow-Origin, so the browser keeps it from the page and says why in the
    console; the 403's text naming the origin is checked in test_collector_cors.py."""
    endpoint = REFUSED_AT[sdk]
    refused_before = site.collector.answered(endpoint, 403)
    with page.expect_console_message(lambda m: "blocked by CORS policy" in m.text) as console:
        page.goto(site.url(sdk, site.elsewhere))
        if sdk == "crossdock":
            page.evaluate("test.send('Refused')")
    assert f"from origin '{site.elsewhere}'" in console.value.text
    assert site.collector.answered(endpoint, 403) > refused_before
    refused_page = [m for m in site.collector.messages()
                    if m["context"].get("page", {}).get("url", "").startswith(site.elsewhere)]
    assert refused_page == []


def test_crossdock_js_starts_a_new_session_after_45_minutes(site: Site, page: Page) -> None:
    """The page's clock is Playwright's: 44 minutes after the first call the session goes
    on; 45 minutes and a second after the last call a new one starts."""
    page.clock.install()
    page.goto(site.url("crossdock"))
    anonymous_id = page.evaluate("test.ready()")
    page.evaluate("test.track('First')")
    page.clock.fast_forward("44:00")
    page.evaluate("test.track('Within')")
    page.clock.fast_forward("45:01")
    page.evaluate("test.track('After')")
    # configurable: with a 10-minute timeout, 11 minutes start another
    page.evaluate("crossdock.init({writeKey: 'wk-browser', sessionTimeout: 10 * 60 * 1000})")
    page.clock.fast_forward("11:00")
    page.evaluate("test.track('Shorter')")
    messages = site.collector.wait_for_messages(anonymous_id, 4, "the four calls")
    session = {m["event"]: m["sessionId"] for m in messages}
    assert session["First"] == session["Within"]
    assert len({session["Within"], session["After"], session["Shorter"]}) == 3, session


@pytest.mark.parametrize("sdk", SDKS)
def test_calls_made_while_the_collector_is_down_arrive_when_it_is_back(
        site: Site, page: Page, sdk: str) -> None:
    page.goto(site.url(sdk))
    anonymous_id = page.evaluate("test.ready()")
    site.collector.stop()
    with page.expect_event("requestfailed",
                           lambda r: r.url.startswith(site.collector.url)):
        page.evaluate("test.track('While down')")
    site.collector.start()
    messages = site.collector.wait_for_messages(
        anonymous_id, 1, f"{sdk}'s call made while the collector was down")
    assert [m["event"] for m in messages] == ["While down"]


def test_crossdock_js_group_alias_and_reset(site: Site, page: Page) -> None:
    page.goto(site.url("crossdock"))
    before = page.evaluate("test.ready()")
    after = page.evaluate("""() => {
        crossdock.identify('u-9');
        crossdock.group('acme', {name: 'ACME'});
        crossdock.alias('u-10');
        crossdock.reset();
        crossdock.track('After reset');
        return crossdock.user().anonymousId;
    }""")
    assert after != before
    sent = by_type(site.collector.wait_for_messages(before, 3, "identify, group and alias"))
    assert (sent["group"]["groupId"], sent["group"]["userId"]) == ("acme", "u-9")
    assert sent["group"]["groupTraits"] == {"name": "ACME"}
    assert (sent["alias"]["previousId"], sent["alias"]["userId"]) == ("u-9", "u-10")
    [reset] = site.collector.wait_for_messages(after, 1, "the call after reset")
    assert "userId" not in reset or reset["userId"] is None
    assert reset["sessionId"] != sent["alias"]["sessionId"]


def test_crossdock_js_keeps_its_queue_for_the_next_page(site: Site, page: Page) -> None:
    """A call the collector never got, on a page that is then left, goes out from the next
    page of the site: the queue is in localStorage."""
    page.goto(site.url("crossdock"))
    anonymous_id = page.evaluate("test.ready()")
    site.collector.stop()
    with page.expect_event("requestfailed", lambda r: r.url.startswith(site.collector.url)):
        page.evaluate("test.track('Left behind')")
    page.goto("about:blank")
    site.collector.start()
    assert site.collector.messages_of(anonymous_id) == []
    page.goto(site.url("crossdock"))
    [message] = site.collector.wait_for_messages(anonymous_id, 1, "the queued call")
    assert message["event"] == "Left behind"


def test_crossdock_js_sends_its_queue_as_a_beacon_when_the_page_is_hidden(
        site: Site, page: Page) -> None:
    """The retry is a minute away when the page is left; only the pagehide beacon can bring
    the call in, and the next page (about:blank) has no crossdock.js."""
    page.goto(site.url("crossdock"))
    anonymous_id = page.evaluate("test.ready()")
    page.evaluate("crossdock.init({writeKey: 'wk-browser', retryBase: 120000, retryMax: 120000})")
    site.collector.stop()
    with page.expect_event("requestfailed", lambda r: r.url.startswith(site.collector.url)):
        page.evaluate("test.track('Beaconed')")
    site.collector.start()
    page.goto("about:blank")
    [message] = site.collector.wait_for_messages(anonymous_id, 1, "the beaconed call")
    assert message["event"] == "Beaconed"


def test_crossdock_js_drops_what_the_collector_refuses_and_says_why(site: Site,
                                                                     page: Page) -> None:
    """A message the collector refuses is dropped with the collector's reason in the
    console, not retried for ever; the good messages of the same batch are kept."""
    page.goto(site.url("crossdock"))
    anonymous_id = page.evaluate("test.ready()")
    with page.expect_console_message(lambda m: "crossdock.js: the collector refused" in m.text) \
            as console:
        page.evaluate("crossdock.track(''); crossdock.track('Good')")
    assert "event: String should have at least 1 character" in console.value.text
    [message] = site.collector.wait_for_messages(anonymous_id, 1, "the good call")
    assert message["event"] == "Good"
    wait_for(lambda: page.evaluate("localStorage.getItem('crossdock.queue')") == "[]",
             "the queue to empty", 30)


def test_crossdock_js_splits_a_batch_the_collector_finds_too_large(site: Site,
                                                                    page: Page) -> None:
    """Three calls of 200 KB each are more than the collector's 500 KB a request together,
    not each: the 413 halves the batch until each part is taken."""
    page.goto(site.url("crossdock"))
    anonymous_id = page.evaluate("test.ready()")
    page.evaluate("""() => {
        for (const n of [1, 2, 3]) crossdock.track('Big ' + n, {blob: 'x'.repeat(200000)});
    }""")
    messages = site.collector.wait_for_messages(anonymous_id, 3, "the three large calls")
    assert sorted(m["event"] for m in messages) == ["Big 1", "Big 2", "Big 3"]
    assert site.collector.answered("/v1/batch", 413) >= 1
