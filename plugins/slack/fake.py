"""Contract fake of Slack's incoming webhooks: a real HTTP server enforcing the documented API.

- `POST /services/<team>/<bot>/<token>`: an unknown webhook path is 404 `channel_not_found`,
  an archived one 410 `channel_is_archived`.
- The body must be a JSON object (400 `invalid_payload`) with `text` or `blocks` (400
  `no_text`); `blocks` must be a list of at most 50 objects with a `type`, section text at most
  3,000 characters (400 `invalid_blocks`).
- `username`, `icon_url`, `icon_emoji` and `channel` (the overrides legacy webhooks honour)
  must be strings (400 `invalid_payload`); a `channel` the fake does not know, when it is given
  `channels`, is 404 `channel_not_found`. What a message was posted as is kept with it.
- About one message per second per webhook with a small burst: beyond it 429 `rate_limited`
  with `Retry-After: 1`. Rate and burst are settable (None turns the limit off) and the clock is
  injectable, so tests step time instead of sleeping.
- Success is 200 with the plain-text body `ok`.

    python -m crossdock.plugins.slack.fake --port 8098 --webhook T000/B000/XXXX
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crossdock.plugins.slack.const import MAX_BLOCKS, MAX_SECTION_TEXT, WEBHOOK_PATH_PREFIX
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import FakeState, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[SlackFake] = web.AppKey("slack_fake")
DEFAULT_WEBHOOK = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
#: the fields a legacy incoming webhook lets a message override
OVERRIDES = ("username", "icon_url", "icon_emoji", "channel")


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class SlackFake(FakeState):
    """What the Slack fake knows (its webhooks) and saw (messages, refusals by error code)."""

    webhooks: set[str] = field(default_factory=lambda: {DEFAULT_WEBHOOK})
    archived: set[str] = field(default_factory=set)
    #: messages per second per webhook; None: no limit
    rate_limit: float | None = 1.0
    #: messages a webhook may send at once before the rate applies
    burst: int = 3
    clock: Callable[[], float] = time.monotonic
    #: channels a message may name in `channel` (None: any)
    channels: set[str] | None = None
    errors: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict, repr=False)

    def url(self, base: str, webhook: str = DEFAULT_WEBHOOK) -> str:
        """The full webhook URL of `webhook` on a server at `base`."""
        return f"{base.rstrip('/')}{WEBHOOK_PATH_PREFIX}{webhook}"

    def take(self, webhook: str) -> bool:
        """Spend one message of the webhook's allowance (a token bucket); False if none left."""
        if self.rate_limit is None:
            return True
        now = self.clock()
        bucket = self._buckets.setdefault(webhook, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst),
                            bucket.tokens + (now - bucket.updated) * self.rate_limit)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def refuse(self, status: int, code: str, headers: dict[str, str] | None = None
               ) -> web.Response:
        self.errors[code] = self.errors.get(code, 0) + 1
        return web.Response(status=status, text=code, headers=headers)

    def reset(self) -> None:
        super().reset()
        self.errors.clear()
        self._buckets.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["errors"] = dict(self.errors)
        return snap


def payload_error(data: Any) -> str | None:
    """Slack's error code for a message body, or None if Slack would post it."""
    if not isinstance(data, dict):
        return "invalid_payload"
    if any(name in data and not isinstance(data[name], str) for name in OVERRIDES):
        return "invalid_payload"
    blocks = data.get("blocks")
    text = data.get("text")
    if not (isinstance(text, str) and text.strip()) and not blocks:
        return "no_text"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return "invalid_blocks"
        inner = block.get("text")
        if block["type"] == "section" and isinstance(inner, dict) \
                and len(str(inner.get("text", ""))) > MAX_SECTION_TEXT:
            return "invalid_blocks"
    return None


def make_app(fake: SlackFake | None = None) -> web.Application:
    """Slack's webhook endpoint as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or SlackFake()
    app = fake_app(FAKE_KEY, fake)

    async def post(request: web.Request) -> web.Response:
        await fake.delay()
        webhook = request.match_info["webhook"].strip("/")
        if webhook in fake.archived:
            return fake.refuse(410, "channel_is_archived")
        if webhook not in fake.webhooks:
            return fake.refuse(404, "channel_not_found")
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return fake.refuse(reply.status, reply.body, reply.headers)
        if not fake.take(webhook):
            return fake.refuse(429, "rate_limited", {"Retry-After": "1"})
        try:
            data = json.loads(await request.read())
        except ValueError:
            return fake.refuse(400, "invalid_payload")
        if code := payload_error(data):
            return fake.refuse(400, code)
        if fake.channels is not None and "channel" in data \
                and data["channel"] not in fake.channels:
            return fake.refuse(404, "channel_not_found")
        fake.record({"webhook": webhook, "body": data})
        return web.Response(text="ok", content_type="text/html")

    app.router.add_post(WEBHOOK_PATH_PREFIX + "{webhook:.+}", post)
    return app


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Slack channel: completed orders, one message each."""
    fake = SlackFake()
    server = context.serve(make_app(fake))
    return DemoDestination(
        "slack-orders",
        {"plugin": "slack",
         "settings": {"webhook_url": fake.url(server.url), "allow_any_host": True},
         "filter": {"events": {"allow": ["Order Completed"]}, "message_types": ["track"]}},
        lambda: list(server.call(lambda: list(fake.received))),
        lambda entry: str(entry.get("body", {}).get("text", "")))


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Slack incoming-webhook contract fake.", 8098)
    parser.add_argument("--webhook", action="append",
                        help=f"a known <team>/<bot>/<token> (default {DEFAULT_WEBHOOK})")
    parser.add_argument("--rate-limit", type=float, default=1.0,
                        help="messages per second per webhook (0: no limit)")
    parser.add_argument("--burst", type=int, default=3)
    args = parser.parse_args(argv)
    fake = SlackFake(latency=args.latency, webhooks=set(args.webhook or [DEFAULT_WEBHOOK]),
                     rate_limit=args.rate_limit or None, burst=args.burst)
    run_fake(make_app(fake), args, *(fake.url("{url}", w) for w in sorted(fake.webhooks)))


if __name__ == "__main__":
    main()
