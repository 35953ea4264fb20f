"""Fixtures of the Mailchimp tests: its contract fake on 127.0.0.1 (a module may override
`fake` to give it other lists, merge fields or refusals)."""

from __future__ import annotations

import pytest

from crossdock.plugins.mailchimp.fake import MailchimpFake, make_app
from crossdock.testing.pytest_plugin import contract_server


@pytest.fixture
def fake() -> MailchimpFake:
    return MailchimpFake()


server = contract_server(make_app)
