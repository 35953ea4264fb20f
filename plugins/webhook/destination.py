"""The generic webhook destination: routed messages as signed JSON requests.

One request per message (the body is the rendered `body` template, or the routed payload), or,
with `batch: true`, one `{"batch": [...]}` request per up to 100 messages. Signed requests follow
Standard Webhooks:

- `webhook-id` is derived from the message id(s) and the endpoint: the same on every retry (the
  receiver's idempotency key), different for another destination's copy of the message, and
  never holding the sender's text (the spec forbids a user-controlled id with a `.` in it);
- `webhook-timestamp` is the time of this delivery attempt (`OutboxItem.attempted_at`, which
  the engine hands in, so `build_requests` stays pure): receivers refuse a timestamp more than
  five minutes from their clock, so the message's own time would fail every late retry. A retry
  therefore carries the same id and body with a new timestamp and signature.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import httpx

from crossdock.destination import (
    ALL_MESSAGE_TYPES,
    Destination,
    Failed,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    chunks,
    http_outcome,
    json_content,
    json_request,
    per_item,
    short_body,
)
from crossdock.plugins.webhook.const import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HEADER_X_SIGNATURE,
    MAX_BATCH_SIZE,
    PLUGIN_NAME,
    USER_AGENT,
)
from crossdock.plugins.webhook.settings import WebhookSettings
from crossdock.plugins.webhook.signing import standard_signature, x_signature


def item_body(item: OutboxItem) -> Any:
    """What one message looks like on the wire: its rendered `body` template (JSON text the
    route step rendered, or an already parsed value), else the routed payload without the
    engine's `rendered` bookkeeping."""
    payload = item.payload
    rendered = payload.get("rendered") or {}
    if "body" in rendered:
        body = rendered["body"]
        if isinstance(body, str):
            try:
                return json.loads(body)
            except json.JSONDecodeError as exc:
                raise ItemRejected(
                    f"mapping.templates.body: rendered text is not JSON ({exc.msg} at "
                    f"line {exc.lineno} column {exc.colno})"
                ) from exc
        return body
    return {k: v for k, v in payload.items() if k != "rendered"}


def webhook_id(endpoint: str, items: Sequence[OutboxItem]) -> str:
    """The request's `webhook-id`: `msg_` (one message) or `batch_` and 128 bits of SHA-256 in
    hex over the endpoint and the message ids, so the same messages to the same endpoint always
    get the same id, and no sender's text (which may hold a `.`) reaches the signed string."""
    prefix = "msg_" if len(items) == 1 else "batch_"
    joined = "\n".join([endpoint, *(item.message_id for item in items)])
    return prefix + hashlib.sha256(joined.encode()).hexdigest()[:32]


class WebhookDestination(Destination[WebhookSettings]):
    manifest = Manifest(
        name=PLUGIN_NAME, description="POST routed messages as signed JSON to any URL",
        docs_url="docs/destinations/webhook.md",
        # every type, group calls included: the body is the routed payload
        message_types=ALL_MESSAGE_TYPES, batch_size=MAX_BATCH_SIZE, auth="signature")

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        bodies, rejected = per_item(items, item_body)
        out: list[Planned] = list(rejected)
        if not self.settings.batch:
            out.extend(self._planned([item], body) for item, body in bodies)
            return out
        for chunk in chunks(bodies, MAX_BATCH_SIZE):
            out.append(self._planned([item for item, _ in chunk],
                                     {"batch": [body for _, body in chunk]}))
        return out

    def _planned(self, items: list[OutboxItem], body: Any) -> PlannedRequest:
        settings = self.settings
        content = json_content(body)
        msg_id = webhook_id(str(settings.url), items)
        # The items of one batch share the attempt; the latest time is the one to sign.
        timestamp = int(max(item.attempted_at for item in items))
        headers = {
            **settings.headers,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            HEADER_ID: msg_id,
            HEADER_TIMESTAMP: str(timestamp),
        }
        if settings.secret is not None:
            secret = settings.secret.get_secret_value()
            if settings.signature_style in ("standard", "both"):
                headers[HEADER_SIGNATURE] = standard_signature(secret, msg_id, timestamp, content)
            if settings.signature_style in ("x-signature", "both"):
                headers[HEADER_X_SIGNATURE] = x_signature(
                    secret, content, settings.x_signature_digest
                )
        return PlannedRequest(json_request(settings.method, str(settings.url), content,
                                           headers=headers), items)

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        if response.status_code == 410:
            # Standard Webhooks: 410 means the receiver disabled this endpoint for good.
            body = short_body(response)
            return Failed("endpoint gone (410): disabled" + (f": {body}" if body else ""))
        return http_outcome(response)
