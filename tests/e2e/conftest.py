"""Fixtures of the end-to-end tests: the destinations' contract fakes on 127.0.0.1.

Nothing here is autouse: other end-to-end modules (the PostgreSQL fleet) bring their own.
Helpers (the CLI as a process, configs, reading the outbox) are in e2e_helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS
from e2e_helpers import Fake
from playwright.sync_api import Browser, sync_playwright

from crossdock.plugins.slack.fake import SlackFake
from crossdock.plugins.slack.fake import make_app as slack_app
from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.plugins.webhook.fake import make_app as webhook_app
from crossdock.testing.fakeserver import serve


@pytest.fixture
def webhook_fake() -> Iterator[Fake]:
    """The webhook contract fake, unsigned, on a free loopback port."""
    state = WebhookFake()
    with serve(webhook_app(state)) as server:
        yield Fake(state, server)


@pytest.fixture
def slack_fake() -> Iterator[Fake]:
    """The Slack contract fake with its 1 message/s limit off (tests script 429s instead)."""
    state = SlackFake(rate_limit=None)
    with serve(slack_app(state)) as server:
        yield Fake(state, server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, headless, for a module's tests (the browser tests
    skip themselves when it is not installed)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
