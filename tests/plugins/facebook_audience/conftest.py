"""Fixtures of the facebook_audience tests: its contract fake on 127.0.0.1 (checking
appsecret_proof with facebook_helpers.SECRET)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from facebook_helpers import SECRET

from crossdock.plugins.facebook_audience.fake import FacebookAudienceFake, make_app
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def fake() -> FacebookAudienceFake:
    return FacebookAudienceFake(app_secret=SECRET)


@pytest.fixture
def server(fake: FacebookAudienceFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        yield running
