"""Fixtures of the webhook tests: its contract fake on 127.0.0.1, verifying signatures made
with webhook_helpers.SECRET."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webhook_helpers import SECRET

from crossdock.plugins.webhook.fake import WebhookFake, make_app
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def fake() -> WebhookFake:
    return WebhookFake(secret=SECRET)


@pytest.fixture
def server(fake: WebhookFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        yield running
