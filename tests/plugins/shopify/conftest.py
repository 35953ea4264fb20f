"""Fixtures of the Shopify tests: the GraphQL Admin API contract fake on 127.0.0.1 with a
clock the tests step, and the pipeline harness (shopify_helpers.Harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shopify_helpers import TOKEN, Harness

from crossdock.plugins.shopify.fake import ShopifyFake, make_app
from crossdock.testing.clock import ManualClock
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(2_000_000.0)


@pytest.fixture
def fake(clock: ManualClock) -> ShopifyFake:
    return ShopifyFake(token=TOKEN, clock=clock)


@pytest.fixture
def server(fake: ShopifyFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        yield running


@pytest.fixture
def harness(tmp_path: Path, server: RunningServer, fake: ShopifyFake) -> Harness:
    return Harness(tmp_path, server, fake)
