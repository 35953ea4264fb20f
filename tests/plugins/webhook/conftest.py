"""Fixtures of the webhook tests: its contract fake on 127.0.0.1, verifying signatures made
with webhook_helpers.SECRET, its clock at the tests' attempt time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webhook_helpers import ATTEMPT_TIME, SECRET

from crossdock.plugins.webhook.fake import WebhookFake, make_app
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def fake() -> WebhookFake:
    return WebhookFake(secret=SECRET, clock=lambda: ATTEMPT_TIME)


@pytest.fixture
def server(fake: WebhookFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        yield running
