"""Contract fake of Attentive's REST API: a real HTTP server that refuses what Attentive refuses.

    POST /v1/subscriptions                          subscribe a user          -> 202
    POST /v1/subscriptions/unsubscribe              unsubscribe a user        -> 200
    POST /v1/events/custom                          a custom event            -> 200
    POST /v1/events/ecommerce/{product-view|add-to-cart|purchase}             -> 200
    POST /v1/attributes/custom                      custom attributes         -> 200
    POST /v1/identity-resolution/user-identifiers   link identifiers          -> 200

The contract it enforces (sources on docs/destinations/attentive.md):
- `Authorization: Bearer <api key>`: none or another key -> 401;
- a `user` with a phone, an email or an external identifier (clientUserId or
  customIdentifiers); phones in E.164 (`+19148440001`; `19148440001` is refused) -> 400;
- subscribe: a known `signUpSourceId`, or a `locale` and `subscriptionType` matching exactly
  one sign-up unit, and a contact the unit subscribes (the phone for TEXT, the email for
  EMAIL) -> else 400. Subscribing a phone that already is subscribed through that unit is
  accepted again and, as Attentive does, texts the person that they already are (counted in
  `already_subscribed_texts`);
- unsubscribe: a `notification` of `{language?: en-US | fr-CA, disabled?: boolean}` -> else
  400; each unsubscribe of a phone texts the person that they are unsubscribed, again on a
  repeat, as Attentive does, unless `notification.disabled` (counted in `unsubscribed_texts`);
- `lost_answers`: the next subscriptions or unsubscriptions are made and answered 504 (the
  answer lost on the way);
- custom events: a `type` without `" ' ( ) { } [ ] \\ | ,`; property keys without
  `" { } [ ] \\ |`; `occurredAt` RFC 3339 with an offset -> else 400;
- e-commerce: `items` not empty, each with `productId`, `productVariantId` and a `price`
  list of `{value: number, currency?: 3 letters}`; `quantity` an integer -> else 400;
- custom attributes: `properties` an object whose names have at most 200 characters and whose
  values are neither lists nor objects; a property created in Attentive's UI with fixed values
  (`fixed_values`) takes only those -> else 400;
- identity: a clientUserId or customIdentifiers with at least one other identifier, each at
  most 100 characters -> else 400;
- rate limits per endpoint and key, per second: 150, subscriptions and identity 10,
  unsubscribe 5 -> 429; every answer carries `x-ratelimit-limit` / `x-ratelimit-remaining`.
Scripted replies (`fake.script([500])`) answer before anything is checked but the key.

    python -m crossdock.plugins.attentive.fake --port 8093 --api-key demo-key \
        --sign-up-source 123456
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from crossdock.plugins.attentive.const import (
    CUSTOM_ATTRIBUTES_PATH,
    CUSTOM_EVENTS_PATH,
    E164,
    ECOMMERCE_KINDS,
    ECOMMERCE_PATH,
    ENDPOINT_RATE_LIMITS,
    EVENT_TYPE_FORBIDDEN,
    IDENTITY_PATH,
    MAX_ATTRIBUTE_NAME,
    MAX_IDENTIFIER_LENGTH,
    PROPERTY_KEY_FORBIDDEN,
    RATE_LIMIT,
    SUBSCRIBE_PATH,
    UNSUBSCRIBE_PATH,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, fake_app, json_handler
from crossdock.testing.fakeserver import fake_arguments, run_fake

#: the languages an unsubscribe's confirmation text may be asked in
NOTIFICATION_LANGUAGES = ("en-US", "fr-CA")
FAKE_KEY: web.AppKey[AttentiveFake] = web.AppKey("attentive_fake")
DEFAULT_KEY = "attentive-test-key"
DEFAULT_SOURCE = "123456"


def _refused(status: int, message: str) -> Refused:
    """A request Attentive answers with an error status."""
    return Refused(status, {"message": message})


#: the contact each subscription channel is made for
CHANNEL_CONTACT = {"TEXT": "phone", "EMAIL": "email"}


@dataclass(frozen=True)
class SignUpUnit:
    """An API sign-up unit: the channels it subscribes, and the locale and subscription type
    it can be found by."""

    channels: frozenset[str] = frozenset({"TEXT", "EMAIL"})
    locale: str = "en-US"
    type: str = "MARKETING"


@dataclass
class AttentiveFake(FakeState):
    """What the Attentive fake knows (the key, sign-up units, fixed-value properties) and holds
    (subscriptions, events, attributes, identities, every request it answered)."""

    api_key: str = DEFAULT_KEY
    units: dict[str, SignUpUnit] = field(
        default_factory=lambda: {DEFAULT_SOURCE: SignUpUnit()})
    #: properties created in Attentive's UI with the values they may take
    fixed_values: dict[str, set[str]] = field(default_factory=dict)
    #: requests per second per endpoint (None: no limits)
    rate_limits: dict[str, float] | None = field(
        default_factory=lambda: dict(ENDPOINT_RATE_LIMITS))
    default_rate_limit: float = RATE_LIMIT
    clock: Callable[[], float] = time.monotonic
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    unsubscriptions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    identities: list[dict[str, Any]] = field(default_factory=list)
    already_subscribed_texts: int = 0
    unsubscribed_texts: int = 0
    _windows: dict[float, FixedWindow] = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.subscriptions.clear()
            self.unsubscriptions.clear()
            self.events.clear()
            self.attributes.clear()
            self.identities.clear()
            self.already_subscribed_texts = 0
            self.unsubscribed_texts = 0
            self._windows.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(subscriptions=list(self.subscriptions),
                        unsubscriptions=list(self.unsubscriptions), events=list(self.events),
                        attributes=json.loads(json.dumps(self.attributes)),
                        identities=list(self.identities),
                        already_subscribed_texts=self.already_subscribed_texts,
                        unsubscribed_texts=self.unsubscribed_texts)
        return snap

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]

    # -- the contract ------------------------------------------------------------------

    def check_auth(self, authorization: str | None) -> None:
        if authorization != f"Bearer {self.api_key}":
            raise _refused(401, "Unauthorized: a valid Bearer API key is required")

    def take(self, path: str) -> dict[str, str]:
        """Count one request against the endpoint's per-second limit: its headers, or
        Refused 429 when none is left this second."""
        if self.rate_limits is None:
            return {}
        limit = self.rate_limits.get(path, self.default_rate_limit)
        with self._lock:
            window = self._windows.setdefault(limit, FixedWindow(limit, 1.0, self.clock))
        taken = window.take(path)
        headers = {k: v for k, v in taken.headers().items() if k != "x-ratelimit-reset"}
        if not taken.allowed:
            raise _Throttled(headers)
        return headers

    def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        user = _user(body.get("user"))
        source = body.get("signUpSourceId")
        if source is not None:
            if str(source) not in self.units:
                raise _refused(400, f"signUpSourceId: no sign-up unit {source!r}")
            unit_id = str(source)
        else:
            locale = body.get("locale")
            kind = body.get("subscriptionType")
            if not isinstance(locale, dict) or kind is None:
                raise _refused(400, "a signUpSourceId, or a locale and a subscriptionType, "
                                    "is required")
            wanted = f"{locale.get('language')}-{locale.get('country')}"
            found = [i for i, u in self.units.items() if u.locale == wanted and u.type == kind]
            if len(found) != 1:
                raise _refused(400, f"locale {wanted} and subscriptionType {kind} match "
                                    f"{len(found)} sign-up units, not exactly one")
            unit_id = found[0]
        unit = self.units[unit_id]
        channels = [c for c in sorted(unit.channels) if user.get(CHANNEL_CONTACT[c])]
        if not channels:
            raise _refused(400, "user: no contact this sign-up unit subscribes ("
                                f"{', '.join(CHANNEL_CONTACT[c] for c in sorted(unit.channels))})")
        answers = []
        with self._lock:
            for channel in channels:
                contact = user[CHANNEL_CONTACT[channel]]
                before = any(s["unit"] == unit_id and s["channel"] == channel
                             and s["contact"] == contact for s in self.subscriptions)
                if before and channel == "TEXT":
                    self.already_subscribed_texts += 1
                self.subscriptions.append({
                    "unit": unit_id, "channel": channel, "contact": contact,
                    "singleOptIn": bool(body.get("singleOptIn")),
                    "externalEventId": body.get("externalEventId")})
                answers.append({"subscription": {"type": unit.type, "channel": channel},
                                "subscriptionStatus": "ALREADY_SUBSCRIBED" if before
                                else "PENDING"})
        return {"user": user, "subscriptionResponses": answers}

    def unsubscribe(self, body: dict[str, Any]) -> None:
        user = _user(body.get("user"))
        notification = body.get("notification")
        if notification is not None and not (
                isinstance(notification, dict)
                and set(notification) <= {"language", "disabled"}
                and isinstance(notification.get("disabled", False), bool)
                and notification.get("language", "en-US") in NOTIFICATION_LANGUAGES):
            raise _refused(400, "notification: {language: en-US | fr-CA, disabled: boolean}")
        silent = isinstance(notification, dict) and notification.get("disabled") is True
        with self._lock:
            self.unsubscriptions.append({"user": user,
                                         "subscriptions": body.get("subscriptions")})
            if user.get("phone") and not silent:
                self.unsubscribed_texts += 1

    def custom_event(self, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if not isinstance(kind, str) or not kind:
            raise _refused(400, "type: is required")
        bad = sorted(set(kind) & EVENT_TYPE_FORBIDDEN)
        if bad:
            raise _refused(400, f"type: must not contain {' '.join(bad)}")
        properties = body.get("properties") or {}
        if not isinstance(properties, dict):
            raise _refused(400, "properties: must be an object")
        for key in properties:
            if set(key) & PROPERTY_KEY_FORBIDDEN:
                raise _refused(400, f"properties: key {key!r} has a character Attentive "
                                    "refuses")
        user = _user(body.get("user"))
        _occurred_at(body)
        with self._lock:
            self.events.append({"kind": "custom", "type": kind, "properties": properties,
                                "externalEventId": body.get("externalEventId"),
                                "occurredAt": body.get("occurredAt"), "user": user})

    def ecommerce(self, kind: str, body: dict[str, Any]) -> None:
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise _refused(400, "items: at least one item is required")
        for n, item in enumerate(items):
            _item(item, f"items[{n}]")
        user = _user(body.get("user"))
        _occurred_at(body)
        with self._lock:
            self.events.append({"kind": kind, "items": items, "user": user,
                                "occurredAt": body.get("occurredAt")})

    def custom_attributes(self, body: dict[str, Any]) -> None:
        properties = body.get("properties")
        if not isinstance(properties, dict) or not properties:
            raise _refused(400, "properties: a non-empty object is required")
        for name, value in properties.items():
            if len(name) > MAX_ATTRIBUTE_NAME:
                raise _refused(400, f"properties: a name is at most {MAX_ATTRIBUTE_NAME} "
                                    "characters")
            if isinstance(value, list | dict):
                raise _refused(400, f"properties.{name}: arrays and objects are not supported")
            allowed = self.fixed_values.get(name)
            if allowed is not None and str(value) not in allowed:
                raise _refused(400, f"properties.{name}: {value!r} is not one of the values "
                                    "defined for it in Attentive")
        user = _user(body.get("user"))
        with self._lock:
            self.attributes.setdefault(_key(user), {}).update(properties)

    def identity(self, body: dict[str, Any]) -> None:
        ids = {k: body[k] for k in ("phone", "email", "shopifyId", "klaviyoId", "clientUserId",
                                    "customIdentifiers") if body.get(k) not in (None, "", [])}
        if "clientUserId" not in ids and "customIdentifiers" not in ids:
            raise _refused(400, "a clientUserId or customIdentifiers is required")
        if len(ids) < 2 and len(ids.get("customIdentifiers") or []) < 2:
            raise _refused(400, "a clientUserId or custom identifier needs another identifier "
                                "to be linked to")
        for name in ("email", "shopifyId", "klaviyoId", "clientUserId"):
            if name in ids and len(str(ids[name])) > MAX_IDENTIFIER_LENGTH:
                raise _refused(400, f"{name}: at most {MAX_IDENTIFIER_LENGTH} characters")
        if "phone" in ids and not E164.match(str(ids["phone"])):
            raise _refused(400, "phone: must be in E.164 format")
        with self._lock:
            self.identities.append(ids)


class _Throttled(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("throttled")
        self.headers = headers


def _user(user: Any) -> dict[str, Any]:
    if not isinstance(user, dict):
        raise _refused(400, "user: is required")
    phone, email = user.get("phone"), user.get("email")
    external = user.get("externalIdentifiers") or {}
    if not isinstance(external, dict):
        raise _refused(400, "user.externalIdentifiers: must be an object")
    if not (phone or email or external.get("clientUserId") or external.get("customIdentifiers")):
        raise _refused(400, "user: a phone, an email or an external identifier is required")
    if phone is not None and not (isinstance(phone, str) and E164.match(phone)):
        raise _refused(400, "user.phone: must be in E.164 format (+19148440001)")
    if email is not None and not (isinstance(email, str) and "@" in email):
        raise _refused(400, "user.email: must be an email address")
    return user


def _key(user: dict[str, Any]) -> str:
    external = user.get("externalIdentifiers") or {}
    return str(user.get("email") or user.get("phone") or external.get("clientUserId"))


def _occurred_at(body: dict[str, Any]) -> None:
    value = body.get("occurredAt")
    if value is None:
        return
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _refused(400, "occurredAt: must be an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise _refused(400, "occurredAt: needs a UTC offset")


def _item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise _refused(400, f"{where}: must be an object")
    for name in ("productId", "productVariantId"):
        if not isinstance(item.get(name), str) or not item[name]:
            raise _refused(400, f"{where}.{name}: is required")
    price = item.get("price")
    if not isinstance(price, list) or not price:
        raise _refused(400, f"{where}.price: a list of {{value, currency}} is required")
    for amount in price:
        value = amount.get("value") if isinstance(amount, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refused(400, f"{where}.price.value: must be a number")
        currency = amount.get("currency")
        if currency is not None and not (isinstance(currency, str) and len(currency) == 3
                                         and currency.isalpha()):
            raise _refused(400, f"{where}.price.currency: an ISO 4217 code")
    quantity = item.get("quantity")
    if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int)):
        raise _refused(400, f"{where}.quantity: must be an integer")


def make_app(fake: AttentiveFake | None = None) -> web.Application:
    """The Attentive fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or AttentiveFake()
    app = fake_app(FAKE_KEY, fake)

    handle = json_handler(fake, lambda request, body: _answer(fake, request, body))

    for path in (SUBSCRIBE_PATH, UNSUBSCRIBE_PATH, CUSTOM_EVENTS_PATH, CUSTOM_ATTRIBUTES_PATH,
                 IDENTITY_PATH, *(ECOMMERCE_PATH.format(kind=k) for k in ECOMMERCE_KINDS)):
        app.router.add_post(path, handle)
    return app


def _answer(fake: AttentiveFake, request: web.Request, body: Any) -> web.Response:
    headers: dict[str, str] = {}
    try:
        fake.check_auth(request.headers.get("Authorization"))
        headers = fake.take(request.path)
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return web.Response(status=reply.status, text=reply.body,
                                headers={**headers, **reply.headers})
        if not isinstance(body, dict):
            raise _refused(400, "the body must be a JSON object")
        path = request.path
        if path == SUBSCRIBE_PATH:
            answer = fake.subscribe(body)
            if fake.take_lost_answer():
                return web.json_response({"message": "Gateway Timeout"}, status=504)
            return web.json_response(answer, status=202, headers=headers)
        if path == UNSUBSCRIBE_PATH:
            fake.unsubscribe(body)
            if fake.take_lost_answer():
                return web.json_response({"message": "Gateway Timeout"}, status=504)
        elif path == CUSTOM_EVENTS_PATH:
            fake.custom_event(body)
        elif path == CUSTOM_ATTRIBUTES_PATH:
            fake.custom_attributes(body)
        elif path == IDENTITY_PATH:
            fake.identity(body)
        else:
            fake.ecommerce(path.rsplit("/", 1)[1], body)
        return web.Response(status=200, headers=headers)
    except _Throttled as throttled:
        return web.json_response({"message": "Too Many Requests"}, status=429,
                                 headers=throttled.headers)
    except Refused as refused:
        return refused.response(headers)


DEMO_KEY = "demo-attentive-key"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Attentive destination (the register_demo_destinations hook)."""
    fake = AttentiveFake(api_key=DEMO_KEY)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        user = body.get("user") or {}
        what = body.get("type") or ", ".join(sorted(body.get("properties") or {})) or ""
        return (f"POST {entry['path'].removeprefix('/v1/')} {what} "
                f"{user.get('email') or user.get('phone') or ''} -> {entry['status']}")

    return DemoDestination(
        "attentive",
        {"plugin": "attentive",
         "settings": {"base_url": server.url, "api_key": DEMO_KEY,
                      "sign_up_source_id": DEFAULT_SOURCE},
         # The demo's anonymous visitor has no phone, email or user id Attentive could
         # match: skipped by the rule instead of dead-lettered.
         "rules": {"only_identified": True}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Attentive contract fake.", 8093)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--sign-up-source", default=DEFAULT_SOURCE,
                        help="the id of the one (TEXT, en-US, MARKETING) sign-up unit")
    args = parser.parse_args(argv)
    fake = AttentiveFake(api_key=args.api_key, units={args.sign_up_source: SignUpUnit()},
                         latency=args.latency)
    run_fake(make_app(fake), args, f"Attentive fake on {{url}}/ (key {args.api_key}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()
