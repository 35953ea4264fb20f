"""Contract fake of a webhook receiver: a real HTTP server that checks what a Standard Webhooks
receiver checks.

- Any path but `/_fake/*` receives; the body must be JSON (else 400).
- With a secret, the webhook-signature (or X-Signature) must match, and the webhook-timestamp
  must be within 5 minutes of the fake's clock, as the reference verifier demands (else 401,
  not recorded).
- Scripted replies (`fake.script([500, 200])`) answer before the request is accepted.
- Every accepted delivery is kept with its webhook-id, so tests count duplicates.

    python -m crossdock.plugins.webhook.fake --port 8099 --secret s3cret
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crossdock.plugins.webhook.const import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HEADER_X_SIGNATURE,
)
from crossdock.plugins.webhook.signing import Digest, verify_standard, verify_x_signature
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import FakeState, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[WebhookFake] = web.AppKey("webhook_fake")
#: the demo's secret: whsec_ and the base64 of the key (here b"demo-signing-secret")
DEMO_SECRET = "whsec_ZGVtby1zaWduaW5nLXNlY3JldA=="
#: how far a webhook-timestamp may be from the receiver's clock (Standard Webhooks' verifiers)
TOLERANCE = 5 * 60.0


@dataclass
class WebhookFake(FakeState):
    """What the webhook fake saw; `secret` turns signature checking on."""

    secret: str | None = None
    x_signature_digest: Digest = "sha1"
    refused: Counter[int] = field(default_factory=Counter)
    #: the receiver's clock, for the timestamp tolerance (tests step it instead of sleeping)
    clock: Callable[[], float] = time.time

    @property
    def ids(self) -> list[str]:
        """The webhook-id of every accepted delivery, in arrival order."""
        return [entry["id"] for entry in self.received]

    def duplicates(self) -> dict[str, int]:
        """webhook-ids accepted more than once, with how often."""
        return {k: n for k, n in Counter(self.ids).items() if n > 1}

    def reset(self) -> None:
        super().reset()
        self.refused.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["refused"] = {str(k): n for k, n in self.refused.items()}
        snap["duplicates"] = self.duplicates()
        return snap

    def signature_problem(self, headers: Any, body: bytes) -> str | None:
        if self.secret is None:
            return None
        standard = headers.get(HEADER_SIGNATURE)
        hexsig = headers.get(HEADER_X_SIGNATURE)
        if standard is None and hexsig is None:
            return "missing webhook-signature"
        if standard is not None and (problem := self.timestamp_problem(headers)):
            return problem
        if standard is not None and not verify_standard(
            self.secret, headers.get(HEADER_ID, ""), headers.get(HEADER_TIMESTAMP, ""), body,
            standard,
        ):
            return "webhook-signature does not match"
        if hexsig is not None and not verify_x_signature(
            self.secret, body, hexsig, self.x_signature_digest
        ):
            return "x-signature does not match"
        return None

    def timestamp_problem(self, headers: Any) -> str | None:
        try:
            sent = int(headers.get(HEADER_TIMESTAMP, ""))
        except ValueError:
            return "webhook-timestamp is not a number"
        now = self.clock()
        if sent < now - TOLERANCE:
            return "webhook-timestamp too old"
        if sent > now + TOLERANCE:
            return "webhook-timestamp too new"
        return None


def make_app(fake: WebhookFake | None = None) -> web.Application:
    """The receiver as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or WebhookFake()
    app = fake_app(FAKE_KEY, fake)

    async def receive(request: web.Request) -> web.Response:
        await fake.delay()
        body = await request.read()
        if problem := fake.signature_problem(request.headers, body):
            fake.refused[401] += 1
            return web.Response(status=401, text=problem)
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            fake.refused[reply.status] += 1
            return reply.response()
        try:
            data = json.loads(body)
        except ValueError:
            fake.refused[400] += 1
            return web.Response(status=400, text="body is not JSON")
        fake.record({
            "id": request.headers.get(HEADER_ID),
            "timestamp": request.headers.get(HEADER_TIMESTAMP),
            "method": request.method,
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": data,
        })
        return reply.response() if reply is not None else web.json_response({"ok": True})

    app.router.add_route("POST", "/{tail:.*}", receive)
    app.router.add_route("PUT", "/{tail:.*}", receive)
    return app


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's webhook: every message, signed, to a receiver that verifies it."""
    fake = WebhookFake(secret=DEMO_SECRET)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") or {}
        parts = [body.get("type"), body.get("event") or body.get("name"),
                 body.get("userId") or body.get("anonymousId")]
        return " ".join(str(p) for p in parts if p)

    return DemoDestination(
        "warehouse-webhook",
        {"plugin": "webhook", "settings": {"url": f"{server.url}/events", "secret": DEMO_SECRET}},
        lambda: list(server.call(lambda: list(fake.received))), describe)


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the webhook contract fake.", 8099)
    parser.add_argument("--secret", help="verify signatures with this secret")
    parser.add_argument("--x-signature-digest", choices=["sha1", "sha256"], default="sha1")
    args = parser.parse_args(argv)
    fake = WebhookFake(latency=args.latency, secret=args.secret,
                       x_signature_digest=args.x_signature_digest)
    run_fake(make_app(fake), args, "webhook fake on {url}/ (GET /_fake/received)")


if __name__ == "__main__":
    main()
