"""Fixtures of the webhook tests: its contract fake on 127.0.0.1, verifying signatures made
with webhook_helpers.SECRET, its clock at the tests' attempt time."""

from __future__ import annotations

import pytest
from webhook_helpers import ATTEMPT_TIME, SECRET

from crossdock.plugins.webhook.fake import WebhookFake, make_app
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def fake() -> WebhookFake:
    return WebhookFake(secret=SECRET, clock=lambda: ATTEMPT_TIME)


server = contract_server(make_app)
