"""Fixtures of the Slack tests: the contract fake on 127.0.0.1. Each module gives its own
`fake` (the rate limit and clock a test needs); `server` serves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crossdock.plugins.slack.fake import SlackFake, make_app
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def server(fake: SlackFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        yield running
