"""Fixtures of the Slack tests: the contract fake on 127.0.0.1. Each module gives its own
`fake` (the rate limit and clock a test needs); `server` serves it."""

from __future__ import annotations

from crossdock.plugins.slack.fake import make_app
from crossdock.testing.pytest_plugin import contract_server

server = contract_server(make_app)
