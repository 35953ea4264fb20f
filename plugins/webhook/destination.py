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
from typing import Any, ClassVar, cast

import httpx
import orjson

from crossdock.destination import (
    ALL_MESSAGE_TYPES,
    Destination,
    Failed,
    OutboxItem,
    Outcome,
    PlannedRequest,
    Rejected,
    http_outcome,
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


class BodyError(ValueError):
    """An item whose body cannot be built (a rendered `body` that is not JSON)."""


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
                raise BodyError(
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


_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# orjson writes what the line above writes, except for floats Python prints with an exponent
# (orjson: 1e16 or 0.00001 where Python has 1e+16 and 1e-05) and NaN/Infinity (orjson: null).
# Digits map to NUL and e/E to \x01 (JSON text holds neither raw), so one substring search
# finds an exponent; a regex took as long as `json` itself.
_MARK_EXPONENT = bytes.maketrans(b"0123456789eE", b"\0" * 10 + b"\1\1")


def encode(body: Any) -> bytes:
    """Compact JSON, non-ASCII as UTF-8; the signature covers exactly these bytes.

    Always the bytes of `json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    .encode()`, which was the largest cost of building a small request: orjson writes them,
    and `json` takes over wherever the two could differ (an orjson error such as an integer
    beyond 64 bits, a non-string key or a lone surrogate; a number with an exponent or
    written 0.0000...; a null that stood for NaN or Infinity)."""
    try:
        out = orjson.dumps(body)
    except orjson.JSONEncodeError:
        return _json_encode(body).encode()
    if (b"\0\1" in out.translate(_MARK_EXPONENT) or b".0000" in out
            or (b"null" in out and orjson.loads(out) != body)):
        return _json_encode(body).encode()
    return out


def json_request(
    method: str, url: httpx.URL, headers: dict[str, str], content: bytes
) -> httpx.Request:
    """`httpx.Request(method, url, headers=headers, content=content)`, built for a third of
    its cost: the same headers in the same order (Host first, Content-Length last, as httpx
    adds them) are given at once, where `content=` made httpx look each of them up through
    its generic mapping methods and copy the headers twice. `headers` must not hold Host,
    Content-Length or Transfer-Encoding (the settings refuse them)."""
    if not content:  # httpx puts an empty body's Content-Length right after Host
        return httpx.Request(method, url, headers=headers, content=content)
    request = httpx.Request(
        method, url,
        headers=[("Host", url.netloc.decode("ascii")), *headers.items(),
                 ("Content-Length", str(len(content)))],
        stream=httpx.ByteStream(content),
    )
    # What read() leaves, without its isinstance check against typing.Iterable (slow).
    request._content = content
    try:
        request.content  # noqa: B018  (an httpx that keeps content elsewhere raises here)
    except httpx.RequestNotRead:
        request.read()
    return request


class WebhookDestination(Destination):
    plugin_name: ClassVar[str] = PLUGIN_NAME
    settings_model = WebhookSettings
    max_batch_size: ClassVar[int] = MAX_BATCH_SIZE
    #: every type, group calls included: the body is the routed payload
    message_types: ClassVar[frozenset[str]] = ALL_MESSAGE_TYPES
    default_concurrency: ClassVar[int] = 4
    description: ClassVar[str] = "POST routed messages as signed JSON to any URL"

    @property
    def config(self) -> WebhookSettings:
        return cast(WebhookSettings, self.settings)

    def build_requests(self, items: Sequence[OutboxItem]) -> list[PlannedRequest | Rejected]:
        out: list[PlannedRequest | Rejected] = []
        bodies: list[tuple[OutboxItem, Any]] = []
        for item in items:
            try:
                bodies.append((item, item_body(item)))
            except BodyError as exc:
                out.append(Rejected(item, str(exc)))
        if not self.config.batch:
            for item, body in bodies:
                out.append(self._planned([item], body))
            return out
        for start in range(0, len(bodies), MAX_BATCH_SIZE):
            chunk = bodies[start:start + MAX_BATCH_SIZE]
            out.append(self._planned([item for item, _ in chunk],
                                     {"batch": [body for _, body in chunk]}))
        return out

    def _planned(self, items: list[OutboxItem], body: Any) -> PlannedRequest:
        settings = self.config
        content = encode(body)
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
        return PlannedRequest(json_request(settings.method, self._url(), headers, content), items)

    def _url(self) -> httpx.URL:
        # Parsing the URL was half of building each request; the parsed one is reused for as
        # long as the settings hold the same URL object.
        source = self.config.url
        cached: tuple[object, httpx.URL] | None = self.__dict__.get("_parsed_url")
        if cached is None or cached[0] is not source:
            cached = (source, httpx.URL(str(source)))
            self.__dict__["_parsed_url"] = cached
        return cached[1]

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        if response.status_code == 410:
            # Standard Webhooks: 410 means the receiver disabled this endpoint for good.
            body = short_body(response)
            return Failed("endpoint gone (410): disabled" + (f": {body}" if body else ""))
        return http_outcome(response)
