"""The TikTok destination: events through TikTok's Events API 2.0.

    track   POST {base}/event/track/   Access-Token: <token>
            {"event_source": "web", "event_source_id": "<pixel code>", "test_event_code"?,
             "data": [{"event", "event_time", "event_id", "user", "page", "properties"}]}

Segment's e-commerce events become TikTok's standard events through the shipped mapping's
`event_names` (Order Completed -> Purchase, ...); other events go as custom events. The
person is matched by email, phone and external_id, each normalized as TikTok asks and
hashed (SHA-256), and by the click id (ttclid) and cookie (ttp) when the message has them.
`event_id` is the message id, so TikTok deduplicates a retry, and the pixel's copy of the
same event when the site sends the pixel that id.

TikTok answers HTTP 200 for most failures and says what happened in the body's `code`: 0 is
success; the others are classified in `classify` (docs/destinations/tiktok.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from crossdock.dates import epoch_millis
from crossdock.destination import (
    DELIVERED,
    Destination,
    DestinationContext,
    Failed,
    FieldRefused,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    Retry,
    chunks,
    first_value,
    http_outcome,
    is_sha256_hex,
    json_content,
    json_number,
    parse_retry_after,
    per_item,
    response_json,
    secret_rate_key,
    sha256_hex,
    short_body,
)
from crossdock.phones import PhoneError
from crossdock.plugins.tiktok.const import (
    DEFAULT_BATCH,
    INVALID_PARAMETER,
    MAX_EVENTS,
    NO_PERMISSION,
    OK,
    PARTIAL_OK,
    PLUGIN_NAME,
    RATE_LIMITED,
    THROTTLE_PAUSE,
    TOKEN_CODES,
    TRACK_PATH,
)
from crossdock.plugins.tiktok.settings import TikTokOptions, TikTokSettings

_CURRENCY = re.compile(r"^[A-Z]{3}$")
#: "Batch.3.properties.currency: ..." -- the event a 40002 is about
_EVENT_INDEX = re.compile(r"^(?:Batch|data)\.(\d+)\.")


class TikTokDestination(Destination[TikTokSettings, TikTokOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/tiktok.md",
        description="TikTok Events API: standard and custom events with hashed email, phone "
                    "and external_id",
        message_types=frozenset({"track"}), batch_size=DEFAULT_BATCH,
        max_batch_size=MAX_EVENTS, auth="bearer")

    def config_warnings(self, context: DestinationContext) -> list[str]:
        if self.settings.test_event_code:
            return ["settings.test_event_code is set: TikTok shows these events in Test "
                    "Events and does not use them for measurement; remove it in production"]
        return []

    # -- one message -------------------------------------------------------------------

    def user(self, payload: dict[str, Any], refused: list[tuple[str, str]]) -> dict[str, Any]:
        """The person as TikTok matches them: email, phone and external_id normalized and
        hashed (a value already hashed is sent as it is), the click id, cookie, IP and
        user agent as they are."""
        user: dict[str, Any] = {}
        # Read raw, not with email_of / phone_of: the value may be a SHA-256 already (no @,
        # no digits to read as a number), which TikTok takes as it is.
        email = first_value(payload, *self.opts.email)
        if email is not None:
            user["email"] = _hashed(str(email).strip().lower())
        phone = first_value(payload, *self.opts.phone)
        if phone is not None:
            text = str(phone).strip()
            if is_sha256_hex(text):
                user["phone"] = text.lower()
            else:
                try:
                    user["phone"] = sha256_hex(self.opts.e164(phone))
                except PhoneError as exc:
                    refused.append(("user.phone", f"left out: {exc}"))
        external = first_value(payload, *self.opts.external_id)
        if external is not None:
            user["external_id"] = _hashed(str(external).strip().lower())
        for name, paths in (("ttclid", ("properties.ttclid", "context.ttclid")),
                            ("ttp", ("properties.ttp", "context.ttp")),
                            ("ip", ("context.ip",)), ("user_agent", ("context.userAgent",)),
                            ("locale", ("context.locale",))):
            value = first_value(payload, *paths)
            if isinstance(value, str):
                user[name] = value
        if "ttclid" not in user:
            # The ad click lands on the page with ?ttclid=...; a site that does not copy it
            # into the event still has it in the page's URL.
            clicked = _ttclid_of(first_value(payload, "context.page.url"))
            if clicked:
                user["ttclid"] = clicked
        if not any(k in user for k in ("email", "phone", "external_id", "ttclid", "ttp")):
            raise ItemRejected("user: TikTok matches an event to a person by email, phone, "
                               "external_id, ttclid or ttp; this message has none")
        return user

    def properties(self, payload: dict[str, Any], refused: list[tuple[str, str]]
                   ) -> dict[str, Any]:
        """Segment's e-commerce properties as TikTok's: contents, value with its currency,
        the order id and the search query."""
        props = payload.get("properties") or {}
        out: dict[str, Any] = {}
        products = props.get("products")
        if not isinstance(products, list):
            products = [props] if props.get("product_id") or props.get("sku") else []
        contents = [c for c in (_content(p) for p in products if isinstance(p, dict)) if c]
        if contents:
            out["contents"] = contents
            out["content_type"] = self.opts.content_type
        currency = props.get("currency")
        if currency is not None:
            code = str(currency).strip().upper()
            if _CURRENCY.match(code):
                out["currency"] = code
            else:
                refused.append(("properties.currency",
                                "left out: not an ISO 4217 code of three letters"))
        value = next((v for v in (json_number(props.get(k)) for k in ("value", "revenue", "total"))
                      if v is not None), None)
        if value is not None:
            if "currency" in out:
                out["value"] = value
            else:
                refused.append(("properties.value", "left out: TikTok takes a value only "
                                                    "with its currency (properties.currency)"))
        for name, key in (("order_id", "order_id"), ("query", "query"),
                          ("description", "description")):
            if isinstance(props.get(key), str) and props[key]:
                out[name] = props[key]
        return out

    def event(self, item: OutboxItem, refused: list[tuple[str, str]]) -> dict[str, Any]:
        payload = item.payload
        name = payload.get("event")
        if not name:
            raise ItemRejected("event: missing; TikTok needs an event name")
        when = epoch_millis(payload.get("timestamp"))
        if when is None:
            raise ItemRejected("timestamp: TikTok needs the event's time")
        # The site's id for the pixel's copy wins: TikTok deduplicates the pixel's and the
        # server's copies only when both carry the same event_id.
        site_id = first_value(payload, *self.opts.event_id)
        usable = isinstance(site_id, (str, int)) and not isinstance(site_id, bool)
        event_id = str(site_id).strip() if usable else ""
        event: dict[str, Any] = {"event": str(name), "event_time": when // 1000,
                                 "event_id": event_id or item.message_id,
                                 "user": self.user(payload, refused)}
        page = {k: v for k, v in (("url", first_value(payload, "context.page.url")),
                                  ("referrer", first_value(payload, "context.page.referrer")))
                if isinstance(v, str)}
        if page:
            event["page"] = page
        properties = self.properties(payload, refused)
        if properties:
            event["properties"] = properties
        return event

    # -- requests ----------------------------------------------------------------------

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        out: list[Planned] = []
        refused: dict[int, list[tuple[str, str]]] = {}

        def build(item: OutboxItem) -> dict[str, Any]:
            mine = refused.setdefault(item.id, [])
            return self.event(item, mine)

        built, rejected = per_item(items, build)
        out.extend(rejected)
        for item, _ in built:
            out.extend(FieldRefused(item, name, why) for name, why in refused[item.id])
        for chunk in chunks(built, MAX_EVENTS):
            out.append(PlannedRequest(self.request([e for _, e in chunk]),
                                      [i for i, _ in chunk], self.rate_key()))
        return out

    def request(self, events: list[dict[str, Any]]) -> httpx.Request:
        body: dict[str, Any] = {"event_source": self.settings.event_source,
                                "event_source_id": self.settings.event_source_id}
        if self.settings.test_event_code:
            body["test_event_code"] = self.settings.test_event_code
        body["data"] = events
        return httpx.Request(
            "POST", self.settings.root + TRACK_PATH, content=json_content(body),
            headers={"access-token": self.settings.access_token.get_secret_value(),
                     "content-type": "application/json"})

    def rate_key(self) -> str:
        """TikTok limits requests per endpoint and token (hashed)."""
        return secret_rate_key("tiktok", self.settings.access_token.get_secret_value())

    # -- answers -----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | Sequence[Outcome]:
        body = response_json(response)
        code = body.get("code") if body is not None else None
        ok_status = 200 <= response.status_code < 300
        if not isinstance(code, int) or isinstance(code, bool) or (
                code in (OK, PARTIAL_OK) and not ok_status):
            # Not TikTok's envelope (a proxy's page, a body cut short), or a success code
            # under an error status: the status says it.
            return http_outcome(response, f"tiktok HTTP {response.status_code}: "
                                          f"{short_body(response)}")
        message = str((body or {}).get("message") or "")
        why = f"tiktok {code}: {message}"
        if code in (OK, PARTIAL_OK):
            return DELIVERED
        if code == RATE_LIMITED:
            after = parse_retry_after(response.headers.get("retry-after"))
            return Retry(why, THROTTLE_PAUSE if after is None else after)
        if code in TOKEN_CODES:
            return Failed(f"bad access token ({why})")
        if code == INVALID_PARAMETER:
            found = _EVENT_INDEX.match(message)
            count = len(planned.items)
            if found and count > 1 and int(found.group(1)) < count:
                # One event TikTok refuses sinks the request: it is a dead letter, and the
                # others go again in the next request.
                bad = int(found.group(1))
                again = Retry(f"tiktok {code}: another event of the request was refused; "
                              "sent again without it", after=0.0)
                return [Failed(why) if i == bad else again for i in range(count)]
            return Failed(why)
        if code == NO_PERMISSION or 40000 <= code < 50000:
            return Failed(why)
        if 50000 <= code < 60000:
            return Retry(why)
        return Failed(why)


def _ttclid_of(url: Any) -> str | None:
    """The `ttclid` query parameter of a page URL, if it has one."""
    if not isinstance(url, str):
        return None
    values = parse_qs(urlsplit(url).query).get("ttclid")
    return values[0] if values else None


def _hashed(normalized: str) -> str:
    """SHA-256 of a normalized value; one already hashed is sent as it is (never twice)."""
    return normalized if is_sha256_hex(normalized) else sha256_hex(normalized)


def _content(product: dict[str, Any]) -> dict[str, Any]:
    """One Segment product as TikTok's content."""
    content: dict[str, Any] = {}
    ident = product.get("product_id") or product.get("sku")
    if ident is not None:
        content["content_id"] = str(ident)
    if isinstance(product.get("name"), str):
        content["content_name"] = product["name"]
    if isinstance(product.get("category"), str):
        content["content_category"] = product["category"]
    price = json_number(product.get("price"))
    if price is not None:
        content["price"] = price
    quantity = json_number(product.get("quantity"))
    if quantity is not None:
        content["quantity"] = int(quantity)
    return content
