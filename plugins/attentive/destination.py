"""The Attentive destination: routed messages as Attentive REST API requests, one per message
(Attentive takes one user per request).

    identify  with custom attributes     POST /v1/attributes/custom
              with only identifiers      POST /v1/identity-resolution/user-identifiers
    track     a subscribe event          POST /v1/subscriptions   (consented channels only)
              an unsubscribe event       POST /v1/subscriptions/unsubscribe
              an e-commerce event        POST /v1/events/ecommerce/{product-view|add-to-cart|
                                                                   purchase}
              any other event            POST /v1/events/custom

Every request names the user by the identifiers Attentive matches on: the phone (E.164), the
email, and the userId as `clientUserId`. Key and value rules (property keys, attribute values
as text, which events are e-commerce, where product fields are read) are in
mappings/attentive.yaml; this module applies the rules a mapping cannot say (E.164, the
characters an event type refuses, required item fields) and reports what it leaves out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from crossdock.destination import (
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
    first_value,
    http_outcome,
    json_content,
    parse_retry_after,
    secret_rate_key,
    short_body,
)
from crossdock.phones import PhoneError
from crossdock.plugins.attentive.const import (
    CUSTOM_ATTRIBUTES_PATH,
    CUSTOM_EVENTS_PATH,
    ECOMMERCE_PATH,
    EMAIL,
    EVENT_TYPE_FORBIDDEN,
    IDENTITY_PATH,
    MAX_ATTRIBUTE_NAME,
    MAX_IDENTIFIER_LENGTH,
    PLUGIN_NAME,
    PROPERTY_KEY_FORBIDDEN,
    RATE_LIMIT,
    SMS,
    SUBSCRIBE_PATH,
    UNSUBSCRIBE_PATH,
)
from crossdock.plugins.attentive.settings import AttentiveOptions, AttentiveSettings

#: Attentive's limits are per second: a 429 without Retry-After is over in a second
_THROTTLE_WAIT = 1.0


class AttentiveDestination(Destination[AttentiveSettings, AttentiveOptions]):
    # 150 requests per second per endpoint and key; subscriptions' 10/s meet 429 beyond it.
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/attentive.md",
        description="Attentive: subscriptions, custom events, e-commerce events, custom "
                    "attributes",
        message_types=frozenset({"track", "identify"}), rate_limit=RATE_LIMIT, auth="bearer")

    def config_warnings(self, context: DestinationContext) -> list[str]:
        if self.opts.subscribe_events and self.settings.sign_up_source_id is None:
            return ["settings.sign_up_source_id is not set: subscribe events "
                    f"({', '.join(self.opts.subscribe_events)}) go to the dead letters"]
        return []

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> list[Planned]:
        """The one request that delivers `item`, after a FieldRefused for each value left
        out; ItemRejected when nothing can be sent."""
        refused: list[tuple[str, str]] = []
        path, body = self.request_body(item.payload, refused)
        if path == UNSUBSCRIBE_PATH and item.attempts > 1:
            # Attentive texts "you are unsubscribed" at every unsubscribe, a repeat too, and
            # an earlier attempt may have been done with its answer lost: a retry is silent.
            body["notification"] = {"disabled": True}
        out: list[Planned] = [FieldRefused(item, name, why) for name, why in refused]
        return [*out, self.planned(path, body, item)]

    def request_body(self, payload: dict[str, Any], refused: list[tuple[str, str]]
                     ) -> tuple[str, dict[str, Any]]:
        """The path and body that deliver `payload`; `refused` collects (field, reason) of
        each value left out. ItemRejected when nothing can be sent."""
        user, external = self.user(payload, refused)
        if payload.get("type") == "identify":
            return self.identify(payload, user, external, refused)
        event = str(payload.get("event") or "")
        if not event:
            raise ItemRejected("event: missing; Attentive needs an event name")
        if event in self.opts.subscribe_events:
            return SUBSCRIBE_PATH, self.subscription(payload, user, external)
        if event in self.opts.unsubscribe_events:
            contacts = {k: v for k, v in user.items() if k in ("phone", "email")}
            if not contacts:
                raise ItemRejected("unsubscribe: no phone or email to unsubscribe")
            return UNSUBSCRIBE_PATH, {"user": contacts}
        with_external = {**user, **({"externalIdentifiers": external} if external else {})}
        if not with_external:
            raise ItemRejected("user: no phone, email or userId to match an Attentive user by "
                            "(an anonymous visitor cannot be sent)")
        kind = self.opts.ecommerce.get(event)
        if kind is not None:
            body = {"items": self.items(payload, refused), "user": with_external}
            return ECOMMERCE_PATH.format(kind=kind), self.timed(body, payload, refused)
        return CUSTOM_EVENTS_PATH, self.custom_event(event, payload, with_external, refused)

    def user(self, payload: dict[str, Any], refused: list[tuple[str, str]]
             ) -> tuple[dict[str, str], dict[str, str]]:
        """({phone, email} the person has, {clientUserId} when the userId is sent)."""
        user: dict[str, str] = {}
        try:
            phone = self.opts.phone_of(payload)
        except PhoneError as exc:
            refused.append(("phone", f"left out: {exc}"))
        else:
            if phone is not None:
                user["phone"] = phone
        email = self.opts.email_of(payload)
        if email is not None:
            user["email"] = email
        elif first_value(payload, *self.opts.email) is not None:
            refused.append(("email", "left out: not an email address"))
        external: dict[str, str] = {}
        if self.opts.client_user_id and payload.get("userId"):
            external["clientUserId"] = str(payload["userId"])
        return user, external

    def identify(self, payload: dict[str, Any], user: dict[str, str],
                 external: dict[str, str], refused: list[tuple[str, str]]
                 ) -> tuple[str, dict[str, Any]]:
        properties: dict[str, Any] = {}
        skip = set(self.opts.not_attributes)
        for name, value in sorted((payload.get("traits") or {}).items()):
            if name in skip or value is None:
                continue
            if len(name) > MAX_ATTRIBUTE_NAME:
                refused.append((f"traits.{name[:40]}…",
                                f"an attribute name is at most {MAX_ATTRIBUTE_NAME} characters"))
            elif isinstance(value, list | dict):
                refused.append((f"traits.{name}", "Attentive takes no lists or objects as "
                                                  "custom attributes (values.stringify sends "
                                                  "them as text)"))
            else:
                properties[name] = value
        if properties:
            if not user and not external:
                raise ItemRejected("user: no phone, email or userId to match an Attentive user "
                                "by (an anonymous visitor cannot be sent)")
            body = {"properties": properties,
                    "user": {**user, **({"externalIdentifiers": external} if external else {})}}
            return CUSTOM_ATTRIBUTES_PATH, body
        if external and user:
            long = [k for k in ("email", "clientUserId")
                    if len({**user, **external}.get(k, "")) > MAX_IDENTIFIER_LENGTH]
            if long:
                raise ItemRejected(f"{long[0]}: Attentive's identity API takes at most "
                                f"{MAX_IDENTIFIER_LENGTH} characters")
            return IDENTITY_PATH, {**external, **user}
        raise ItemRejected("identify: no custom attribute to set, and no userId to link to a "
                        "phone or email")

    def subscription(self, payload: dict[str, Any], user: dict[str, str],
                     external: dict[str, str]) -> dict[str, Any]:
        source = self.settings.sign_up_source_id
        if source is None:
            raise ItemRejected("settings.sign_up_source_id: required to subscribe anyone")
        consent = payload.get("consent") or {}
        contacts: dict[str, str] = {}
        why: list[str] = []
        for purpose, contact in ((SMS, "phone"), (EMAIL, "email")):
            if contact not in user:
                why.append(f"no {contact}")
            elif consent.get(purpose) is not True:
                why.append(f"consent {purpose!r} not granted")
            else:
                contacts[contact] = user[contact]
        if not contacts:
            raise ItemRejected(f"subscription: no channel to subscribe ({'; '.join(why)})")
        body: dict[str, Any] = {"user": contacts, "signUpSourceId": source,
                                "externalEventId": payload.get("messageId")}
        if external:
            body["externalIdentifiers"] = external
        if self.settings.single_opt_in:
            body["singleOptIn"] = True
        return body

    def custom_event(self, event: str, payload: dict[str, Any], user: dict[str, Any],
                     refused: list[tuple[str, str]]) -> dict[str, Any]:
        bad = "".join(dict.fromkeys(c for c in event if c in EVENT_TYPE_FORBIDDEN))
        if bad:
            raise ItemRejected(f"event: {event[:60]!r} holds {' '.join(bad)}, which Attentive "
                            "refuses in an event type: rename it in mapping.event_names")
        properties: dict[str, Any] = {}
        for key, value in (payload.get("properties") or {}).items():
            if set(key) & PROPERTY_KEY_FORBIDDEN:
                refused.append((f"properties.{key}", 'a property key must not hold " { } [ ] '
                                                     "\\ | (keys.normalize in the mapping)"))
            else:
                properties[key] = value
        body: dict[str, Any] = {"type": event, "user": user,
                                "externalEventId": payload.get("messageId")}
        if properties:
            body["properties"] = properties
        return self.timed(body, payload, refused)

    def items(self, payload: dict[str, Any], refused: list[tuple[str, str]]
              ) -> list[dict[str, Any]]:
        properties = payload.get("properties") or {}
        products = properties.get("products")
        sources = products if isinstance(products, list) and products else [properties]
        order_currency = first_value(properties, *self.opts.item.get("currency", []))
        out = []
        for n, product in enumerate(sources):
            if not isinstance(product, dict):
                refused.append((f"items[{n}]", "a product must be an object"))
                continue
            item, missing = self.item(product, order_currency)
            if missing:
                refused.append((f"items[{n}]", f"left out: Attentive needs {missing}"))
                continue
            out.append(item)
        if not out:
            raise ItemRejected("items: no product with a product id, a variant id and a price")
        return out

    def item(self, product: dict[str, Any], order_currency: Any
             ) -> tuple[dict[str, Any], str]:
        """An Attentive item from a product, and what it lacks ("" when nothing)."""
        read = {field: first_value(product, *keys) for field, keys in self.opts.item.items()}
        item: dict[str, Any] = {}
        for field in ("productId", "productVariantId", "name", "productImage", "productUrl"):
            if read.get(field) is not None:
                item[field] = str(read[field])
        missing = [f for f in ("productId", "productVariantId") if f not in item]
        price = _number(read.get("price"))
        if price is None:
            missing.append("price")
        else:
            currency = read.get("currency") or order_currency
            item["price"] = [{"value": price, **({"currency": str(currency).upper()}
                                                  if currency else {})}]
        quantity = _number(read.get("quantity"))
        if quantity is not None and float(quantity).is_integer():
            item["quantity"] = int(quantity)
        return item, ", ".join(missing)

    def timed(self, body: dict[str, Any], payload: dict[str, Any],
              refused: list[tuple[str, str]]) -> dict[str, Any]:
        """`body` with `occurredAt` from the message's timestamp (RFC 3339 with an offset)."""
        stamp = payload.get("timestamp")
        if stamp:
            try:
                parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                body["occurredAt"] = parsed.isoformat()
            else:
                refused.append(("timestamp", "left out: not a date-time with a UTC offset"))
        return body

    def planned(self, path: str, body: dict[str, Any], item: OutboxItem) -> PlannedRequest:
        key = self.settings.api_key.get_secret_value()
        request = httpx.Request(
            "POST", self.settings.root + path, content=json_content(body),
            headers={"authorization": f"Bearer {key}", "content-type": "application/json",
                     "accept": "application/json"})
        # Attentive limits each endpoint on its own, per key.
        return PlannedRequest(request, [item], secret_rate_key(f"attentive{path}", key))

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        status = response.status_code
        if status in (401, 403):
            return Failed(f"bad credentials (HTTP {status}): {short_body(response)}")
        if status == 429:
            after = parse_retry_after(response.headers.get("retry-after"))
            return Retry(f"HTTP 429: {short_body(response)}",
                         _THROTTLE_WAIT if after is None else after)
        return http_outcome(response)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else number
