"""Fixtures of the Shopify tests: the GraphQL Admin API contract fake on 127.0.0.1 with a
clock the tests step, and the pipeline harness (shopify_helpers.Harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from shopify_helpers import TOKEN, Harness

from crossdock.plugins.shopify.fake import ShopifyFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(2_000_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> ShopifyFake:
    return ShopifyFake(token=TOKEN, clock=clock)


server = contract_server(make_app)


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: ShopifyFake) -> Harness:
    return Harness(tmp_path, server, fake)
