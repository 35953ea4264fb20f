"""The operator console in a real browser: Debian's Chromium, driven by Playwright, against a
real `crossdock run` (collector, delivery, the console on its ops listener) and the Slack
contract fake.

The story an operator lives: log in; watch a message arrive live and see what the destination
got from it; the destination refuses it (a mapping names a channel Slack cannot take), so it
is a dead letter; fix the mapping (the config, reloaded by SIGHUP), dry-run the replay, replay
it and see it delivered, with the fixed mapping, by the contract fake. A screenshot of each
page is saved (CROSSDOCK_SCREENSHOTS=DIR keeps them there: docs/console/ holds the docs' ones).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from browser_helpers import CHROMIUM
from e2e_helpers import Fake, slack_destination, slack_url, start_crossdock, wait_for
from playwright.sync_api import Browser, BrowserContext, Page, expect

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Debian's Chromium is not installed ({CHROMIUM}): apt-get install chromium "
           "(.ci/run installs it)")

WRITE_KEY = "wk-console-e2e"
ADMIN_PASSWORD = "console-e2e-admin-pw"
START_TIMEOUT = 60.0
TIMEOUT_MS = 30_000


class Daemon:
    """`crossdock run` with the collector and the ops listener on free ports and the console
    on; `reload(destination)` rewrites the config and sends SIGHUP."""

    def __init__(self, folder: Path, destination: dict[str, Any], **top: Any) -> None:
        self.folder = folder
        self.config = folder / "crossdock.yaml"
        self.log = folder / "daemon.log"
        #: more of the config (audiences:), kept on a reload
        self.top = top
        self.write(destination)
        self.process: subprocess.Popen[bytes] = start_crossdock("run", "-c", str(self.config),
                                                                log=self.log)
        running = re.compile(r"crossdock running: .*collector (http://\S+), ops (http://\S+),")
        wait_for(lambda: self.alive() and running.search(self.text()) is not None,
                 "the daemon to run", START_TIMEOUT, self.text)
        found = running.search(self.text())
        assert found
        self.collector, self.ops = found.group(1), found.group(2)

    def write(self, destination: dict[str, Any]) -> None:
        self.config.write_text(yaml.safe_dump({
            "outbox": {"url": "sqlite:///outbox.db"},
            "collector": {"port": 0, "write_keys": [WRITE_KEY]},
            "ops": {"port": 0},
            "console": {"users": {"ada": {"password": ADMIN_PASSWORD, "role": "admin"}}},
            "destinations": {"alerts": destination},
            **self.top,
        }, sort_keys=False))

    def reload(self, destination: dict[str, Any]) -> None:
        before = self.text().count("reloaded ")
        self.write(destination)
        self.process.send_signal(signal.SIGHUP)
        wait_for(lambda: self.text().count("reloaded ") > before, "the reload", 30, self.text)

    def alive(self) -> bool:
        assert self.process.poll() is None, self.text()
        return True

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def send(self, message: dict[str, Any]) -> None:
        answer = httpx.post(f"{self.collector}/v1/track", json=message,
                            auth=(WRITE_KEY, ""), timeout=10)
        assert answer.status_code == 200, answer.text

    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        answer = httpx.post(f"{self.collector}/v1/batch", json={"batch": messages},
                            auth=(WRITE_KEY, ""), timeout=10)
        assert answer.status_code == 200, answer.text

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, self.text()[-3000:]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CROSSDOCK_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_page(browser: Browser) -> tuple[BrowserContext, Page, list[str]]:
    """A fresh context (its own cookies) and page, and the errors its console logs."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return context, page, errors


def shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_log_in_watch_live_replay_after_fixing_the_mapping(
        tmp_path: Path, browser: Browser, slack_fake: Fake, shots: Path) -> None:
    webhook = slack_url(slack_fake)
    # "VIP Sales" is no channel name Slack takes: the plugin refuses every message.
    broken = slack_destination(webhook, mapping={"templates": {"channel": "VIP Sales"}})
    daemon = Daemon(tmp_path, broken)
    context, page, errors = new_page(browser)
    try:
        # Log in: the console sends the browser to its login page first.
        page.goto(f"{daemon.ops}/console/")
        expect(page).to_have_url(re.compile(r"/console/login"))
        shot(page, shots, "login")
        page.fill("input[name=name]", "ada")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Overview")
        cookie = next(c for c in context.cookies() if c["name"] == "crossdock_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # Watch a message arrive live.
        page.goto(f"{daemon.ops}/console/live")
        expect(page.locator("#live-state")).to_have_text("live")
        daemon.send({"type": "track", "event": "Order Completed", "userId": "ada-42",
                     "messageId": "order-1", "properties": {"total": 99}})
        arrived = page.locator("#events li", has_text="order-1")
        expect(arrived).to_have_count(1)
        arrived.locator("summary").click()
        expect(arrived.locator(".decisions-table [data-destination=alerts]")).to_be_visible()
        shot(page, shots, "live")
        # Paused, the tail shows nothing new; resumed, it picks up what came meanwhile.
        page.click("#live-pause")
        expect(page.locator("#live-state")).to_have_text("paused")
        daemon.send({"type": "track", "event": "Cart Viewed", "userId": "ada-42",
                     "messageId": "while-paused"})
        wait_for(lambda: "while-paused" in daemon.text() or _kept(tmp_path, "while-paused"),
                 "the message to be accepted", 30)
        expect(page.locator("#events li", has_text="while-paused")).to_have_count(0)
        page.click("#live-pause")
        expect(page.locator("#events li", has_text="while-paused")).to_have_count(1)

        # The destination refuses it: a dead letter, named on the overview.
        page.goto(f"{daemon.ops}/console/dead-letters")
        wait_for(lambda: _reloaded_has(page, "#letters", "order-1"), "the dead letter", 30)
        expect(page.locator("#letters")).to_contain_text("channel")
        shot(page, shots, "dead-letters")
        page.click("#letters a >> nth=0")
        expect(page.locator("#reason")).to_contain_text("channel")
        shot(page, shots, "dead-letter")
        page.goto(f"{daemon.ops}/console/")
        expect(page.locator("#destinations")).to_contain_text("alerts")
        # The counts are a snapshot read every few seconds (its age shown): the dead letter
        # shows once a read after it has been made, without a reload.
        dead = page.locator("#destinations a.dead")
        expect(dead).to_be_visible(timeout=30_000)
        expect(page.locator("#counted")).to_contain_text("Counted")
        shot(page, shots, "overview")
        # The overview refreshes itself (htmx): another dead letter shows without a reload.
        before = int(dead.inner_text())
        page.evaluate("window.notReloaded = true")
        daemon.send({"type": "track", "event": "Order Completed", "userId": "ada-43",
                     "messageId": "order-2"})
        expect(dead).to_have_text(str(before + 1), timeout=30_000)
        assert page.evaluate("window.notReloaded") is True

        # Fix the mapping (no channel override), reload, dry-run and replay.
        daemon.reload(slack_destination(webhook))
        page.goto(f"{daemon.ops}/console/dead-letters")
        page.check("#letters tr:has-text(\"order-1\") input[name=ids]")
        page.click("#dry-run")
        expect(page.locator("#plans")).to_contain_text("re-routed")
        assert '"channel"' not in page.locator("#plans").inner_text()
        shot(page, shots, "replay-dry-run")
        page.click("#replay")
        expect(page.locator(".ok")).to_contain_text("Replayed 1 of 1 dead letters.")
        wait_for(lambda: any(e["body"].get("text", "").startswith("*Order Completed* by ada-42")
                             for e in slack_fake.received()), "the replayed delivery", 30)
        assert "channel" not in slack_fake.received()[-1]["body"]

        # The mapping tester and the destination page.
        page.goto(f"{daemon.ops}/console/tester")
        page.fill("#message", json.dumps({"type": "track", "event": "Signed Up",
                                          "userId": "u-7"}, indent=2))
        page.click("#try")
        expect(page.locator("#result [data-destination=alerts]")).to_contain_text("routed")
        shot(page, shots, "tester")
        page.goto(f"{daemon.ops}/console/destinations/alerts")
        page.click("#pause-toggle")
        expect(page.locator("#pause-toggle")).to_have_text("Resume delivery")
        shot(page, shots, "destination")
        page.click("#pause-toggle")
        expect(page.locator("#pause-toggle")).to_have_text("Pause delivery")

        # No page showed the webhook URL's secret path, in its text or its HTML.
        for path in ("/", "/destinations/alerts", "/dead-letters", "/tester", "/live"):
            page.goto(f"{daemon.ops}/console{path}")
            assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in page.content(), path
        assert not [e for e in errors if "Content Security Policy" in e], errors
        assert "console: ada (admin) POST /console/dead-letters/replay -> 200" in daemon.text()
    finally:
        context.close()
        daemon.stop()


def test_pages_read_without_javascript(tmp_path: Path, browser: Browser, slack_fake: Fake,
                                       shots: Path) -> None:
    daemon = Daemon(tmp_path, slack_destination(slack_url(slack_fake)))
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        daemon.send({"type": "track", "event": "Signed Up", "userId": "no-js",
                     "messageId": "no-js-1"})
        page.goto(f"{daemon.ops}/console/")
        page.fill("input[name=name]", "ada")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#destinations")).to_contain_text("alerts")
        page.goto(f"{daemon.ops}/console/live")
        expect(page.locator("#events")).to_contain_text("no-js-1")
        page.goto(f"{daemon.ops}/console/live/message?id=no-js-1")
        expect(page.locator(".decisions-table [data-destination=alerts]")).to_be_visible()
        page.goto(f"{daemon.ops}/console/tester?message=" + json.dumps(
            {"type": "track", "event": "X", "userId": "u"}))
        expect(page.locator("#result [data-destination=alerts]")).to_contain_text("routed")
    finally:
        context.close()
        daemon.stop()


def _kept(folder: Path, message_id: str) -> bool:
    """Whether the daemon's outbox keeps the message (it was accepted)."""
    import sqlite3

    db = folder / "outbox.db"
    if not db.exists():
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT 1 FROM outbox_messages WHERE message_id = ?",
                            [message_id]).fetchone() is not None


def _reloaded_has(page: Page, selector: str, text: str) -> bool:
    page.reload()
    return text in page.locator(selector).inner_text()


def log_in(page: Page, daemon: Daemon) -> None:
    page.goto(f"{daemon.ops}/console/")
    page.fill("input[name=name]", "ada")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def test_audience_sync_dictionary_then_look_a_profile_up_and_erase_it(
        tmp_path: Path, browser: Browser, slack_fake: Fake, shots: Path) -> None:
    # Slack hears of erasures only: its filter lets the profile_deleted system event through.
    alerts = slack_destination(slack_url(slack_fake), filter={
        "message_types": ["track"], "events": {"allow": ["profile_deleted"]}})
    daemon = Daemon(tmp_path, alerts, audiences={"big_spenders": {
        "condition": "lifetime_value > 500", "destinations": ["alerts"],
        "sync_on_change": False}})
    context, page, errors = new_page(browser)
    try:
        daemon.send_batch([
            {"type": "page", "anonymousId": "laptop-7", "name": "Pricing", "sessionId": "s-1"},
            {"type": "identify", "anonymousId": "laptop-7", "userId": "ann-7",
             "traits": {"email": "Ann@Example.com", "firstName": "Ann", "plan": "pro",
                        "lifetime_value": 900, "we_segment": "vip"}},
            {"type": "track", "userId": "ann-7", "event": "Order Completed",
             "properties": {"total": 99.5, "currency": "EUR"}},
            {"type": "identify", "userId": "bob-8", "traits": {"plan": 3}},
        ])
        log_in(page, daemon)

        # The audience: who would enter, then sync now.
        page.goto(f"{daemon.ops}/console/audiences")
        expect(page.locator("table")).to_contain_text("lifetime_value > 500")
        shot(page, shots, "audiences")
        page.click("text=big_spenders")
        page.click("text=Preview who enters and leaves")
        expect(page.locator("#preview")).to_contain_text("1 would enter and 0 would leave")
        expect(page.locator("#preview")).to_contain_text("ann@example.com")
        shot(page, shots, "audience")
        page.click("text=Sync now")
        expect(page.locator(".ok")).to_contain_text("Synced now: 1 entered, 0 left.")
        expect(page.locator("#members")).to_have_text("1")

        # The data dictionary: what was seen, and bob's plan refused for its type.
        page.goto(f"{daemon.ops}/console/dictionary")
        expect(page.locator("#entries")).to_contain_text("Order Completed")
        expect(page.locator("#by-rule")).to_contain_text("wrong type")
        expect(page.locator("#by-rule")).to_contain_text("reserved name")
        assert page.locator("#entries svg.spark").count() >= 8
        shot(page, shots, "dictionary")

        # Look Ann up by her email, see her profile, erase her.
        page.goto(f"{daemon.ops}/console/profiles")
        page.fill("input[name=ref]", "ann@example.com")
        page.select_option("select[name=by]", "email")
        page.click("form.filters button[type=submit]")
        profile = page.locator("#profile")
        expect(profile).to_contain_text("known · user id ann-7")
        expect(profile).to_contain_text("laptop-7")
        expect(profile).to_contain_text("big_spenders")
        expect(profile).to_contain_text("names starting with 'we_' are reserved")
        profile_id = profile.get_attribute("data-profile")
        assert profile_id and profile_id.startswith("p_")
        shot(page, shots, "profile")
        page.click("#erase")
        expect(page.locator("h1")).to_have_text(f"Erase profile {profile_id}?")
        shot(page, shots, "profile-erase")
        page.fill("input[name=confirm]", "erase")
        page.click("button.danger")
        expect(page.locator(".ok")).to_contain_text(
            f"Erased profile {profile_id}; took them out of 1 audiences")
        page.fill("input[name=ref]", "ann-7")
        page.click("form.filters button[type=submit]")
        expect(page.locator(".problem")).to_contain_text("No profile for 'ann-7'")
        shot(page, shots, "profile-erased")
        # The destination that subscribes to erasures heard of it.
        wait_for(lambda: any("profile_deleted" in e["body"].get("text", "")
                             for e in slack_fake.received()), "the profile_deleted event", 30)
        assert not [e for e in errors if "Content Security Policy" in e], errors
        assert (f"console: ada (admin) POST /console/profiles/erase -> 303; erased profile "
                f"{profile_id}") in daemon.text()
    finally:
        context.close()
        daemon.stop()
