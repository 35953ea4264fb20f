"""Fixtures of the Mailchimp tests: its contract fake on 127.0.0.1 (a module may override
`fake` to give it other lists, merge fields or refusals)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crossdock.plugins.mailchimp.fake import MailchimpFake, make_app
from crossdock.testing.fakeserver import RunningServer, serve


@pytest.fixture
def fake() -> MailchimpFake:
    return MailchimpFake()


@pytest.fixture
def server(fake: MailchimpFake) -> Iterator[RunningServer]:
    with serve(make_app(fake)) as running:
        yield running
