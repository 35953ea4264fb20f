"""Fixtures of the facebook_audience tests: its contract fake on 127.0.0.1 (checking
appsecret_proof with facebook_helpers.SECRET)."""

from __future__ import annotations

import pytest
from facebook_helpers import SECRET

from crossdock.plugins.facebook_audience.fake import FacebookAudienceFake, make_app
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def fake() -> FacebookAudienceFake:
    return FacebookAudienceFake(app_secret=SECRET)


server = contract_server(make_app)
