"""Contract fake of Cordial's REST API v2 (contacts and contact activities): a real HTTP server
that refuses what Cordial refuses.

    GET  /v2/contacts/{key}          read a contact ("email:ada@example.com")  -> 200 / 404
    POST /v2/contacts                create a contact                           -> 200 / 409
    PUT  /v2/contacts/{key}          update a contact                           -> 200 / 404
    POST /v2/contactactivities       record an event                            -> 200 / 404

The contract it enforces (sources on docs/destinations/cordial.md):
- HTTP Basic auth with the API key as the user name (the password is left blank): none or
  another key -> 401;
- a contact is keyed by `channels.email.address`, a valid email; subscribe statuses are
  `none`, `subscribed` or `unsubscribed`; a contact who unsubscribed is subscribed again only
  with `forceSubscribe: true` (CAN-SPAM) -> else 400;
- attributes must be defined in the account (`attributes`, by type): a value of the wrong type
  is refused (400, the account's validators); an attribute the account does not define is
  ignored (recorded in `ignored`), as Cordial does;
- an activity names its contact (`email` or `cID`) and an action `a` of at most 40 characters
  that is not one Cordial records itself (open, click, pageview, ...); `ats` is ISO 8601 ->
  else 400; property keys of only digits or holding a dot are stripped (recorded in
  `stripped`), as Cordial does;
- rate limits per method and endpoint per minute (none unless set: Cordial's are per account)
  -> 429 with `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining`, `X-Rate-Limit-Reset` and
  `Retry-After`.
Where Cordial's documents are silent the fake takes the stricter reading, and the plugin
handles both: creating an existing contact is 409, and an activity for a contact Cordial does
not know is 404. Scripted replies (`fake.script([500])`) answer first.

    python -m crossdock.plugins.cordial.fake --port 8092 --api-key demo-key
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from crossdock.plugins.cordial.const import (
    ACTIVITIES_PATH,
    CONTACT_PATH,
    CONTACTS_PATH,
    MAX_ACTION_LENGTH,
    RESERVED_ACTIONS,
    STRIPPED_KEY,
    SUBSCRIBE_STATUSES,
    SUBSCRIBED,
    UNSUBSCRIBED,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, fake_app, json_handler
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[CordialFake] = web.AppKey("cordial_fake")
DEFAULT_KEY = "cordial-test-key"
PREFIX = "/v2"
#: the attributes a new account defines, with their types
DEFAULT_ATTRIBUTES = {"first_name": "string", "last_name": "string", "plan": "string",
                      "lifetime_value": "number", "birthday": "date", "customer_id": "string"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[1-9]\d{6,14}$")


def _refused(status: int, message: str) -> Refused:
    """A request Cordial answers with an error status."""
    return Refused(status, {"error": True, "message": message})


@dataclass
class CordialFake(FakeState):
    """What the Cordial fake knows (the key, the account's attributes) and holds (contacts by
    email, activities, what it ignored or stripped, every request it answered)."""

    api_key: str = DEFAULT_KEY
    attributes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    #: requests per minute by "METHOD /v2/path-template" (None or missing: no limit)
    rate_limits: dict[str, int] | None = None
    clock: Callable[[], float] = time.monotonic
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    stripped: list[str] = field(default_factory=list)
    _windows: dict[str, FixedWindow] = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.contacts.clear()
            self.activities.clear()
            self.ignored.clear()
            self.stripped.clear()
            self._windows.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(contacts=copy.deepcopy(self.contacts), activities=list(self.activities),
                        ignored=list(self.ignored), stripped=list(self.stripped))
        return snap

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]

    # -- the contract ------------------------------------------------------------------

    def check_auth(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Basic "):
            raise _refused(401, "Basic authentication with the API key is required")
        try:
            user = base64.b64decode(authorization[6:], validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise _refused(401, "unreadable Basic credentials") from None
        if user != self.api_key:
            raise _refused(401, "invalid API key")

    def take(self, endpoint: str) -> dict[str, str]:
        """Count one request against the endpoint's per-minute limit: the rate headers, or
        _Throttled when none is left."""
        limit = (self.rate_limits or {}).get(endpoint)
        if limit is None:
            return {}
        with self._lock:
            window = self._windows.setdefault(endpoint, FixedWindow(limit, 60.0, self.clock))
        taken = window.take(endpoint)
        headers = taken.headers(("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining",
                                 "X-Rate-Limit-Reset"))
        if not taken.allowed:
            raise _Throttled({**headers, "Retry-After": headers["X-Rate-Limit-Reset"]})
        return headers

    def find(self, key: str) -> dict[str, Any]:
        kind, _, value = key.partition(":")
        with self._lock:
            if kind == "email":
                found = self.contacts.get(value.lower())
            else:  # a cID, or a secondary key the account defines: key:value
                found = next((c for c in self.contacts.values()
                              if c["_id"] == key or c["attributes"].get(kind) == value), None)
        if found is None:
            raise _refused(404, "contact not found")
        return found

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        email = _email_address(body)
        with self._lock:
            if email.lower() in self.contacts:
                raise _refused(409, "a contact with this email already exists")
        contact = {"_id": f"c{len(self.contacts) + 1:024d}", "channels": {}, "attributes": {}}
        self._apply(contact, body)
        with self._lock:
            self.contacts[email.lower()] = contact
        return contact

    def update(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        contact = self.find(key)
        changed = copy.deepcopy(contact)
        self._apply(changed, body)
        email = changed["channels"]["email"]["address"].lower()
        with self._lock:
            old = next(k for k, v in self.contacts.items() if v is contact)
            if email != old and email in self.contacts:
                raise _refused(409, "a contact with this email already exists")
            del self.contacts[old]
            self.contacts[email] = changed
        return changed

    def _apply(self, contact: dict[str, Any], body: dict[str, Any]) -> None:
        """Check `body` whole, then change `contact`: nothing changes when a rule breaks."""
        channels = body.get("channels") or {}
        if not isinstance(channels, dict):
            raise _refused(400, "channels: must be an object")
        force = body.get("forceSubscribe") is True
        updates: dict[str, dict[str, Any]] = {}
        for name, channel in channels.items():
            if name not in ("email", "sms") or not isinstance(channel, dict):
                raise _refused(400, f"channels.{name}: not a channel (email, sms)")
            address = channel.get("address", contact["channels"].get(name, {}).get("address"))
            if name == "email" and not (isinstance(address, str) and _EMAIL.match(address)):
                raise _refused(400, "channels.email.address: a valid email is required")
            if name == "sms" and not (isinstance(address, str) and _PHONE.match(address)):
                raise _refused(400, "channels.sms.address: a phone number is required")
            status = channel.get("subscribeStatus")
            if status is not None and status not in SUBSCRIBE_STATUSES:
                raise _refused(400, f"channels.{name}.subscribeStatus: one of none, subscribed, "
                                    "unsubscribed")
            current = contact["channels"].get(name, {}).get("subscribeStatus")
            if status == SUBSCRIBED and current == UNSUBSCRIBED and not force:
                raise _refused(400, f"channels.{name}: the contact unsubscribed; subscribing "
                                    "them again needs forceSubscribe: true")
            updates[name] = {"address": address,
                             **({"subscribeStatus": status} if status else {})}
        attributes = {}
        for key, value in body.items():
            if key in ("channels", "forceSubscribe", "suppressTriggers"):
                continue
            kind = self.attributes.get(key)
            if kind is None:
                with self._lock:
                    self.ignored.append(key)
                continue
            if value is not None and not _typed(kind, value):
                raise _refused(400, f"{key}: must be a {kind} (the attribute's validator)")
            attributes[key] = value
        for name, update in updates.items():
            contact["channels"].setdefault(name, {"subscribeStatus": "none"}).update(update)
        contact["attributes"].update(attributes)

    def activity(self, body: dict[str, Any]) -> None:
        action = body.get("a")
        if not isinstance(action, str) or not action:
            raise _refused(400, "a: the action name is required")
        if len(action) > MAX_ACTION_LENGTH:
            raise _refused(400, f"a: at most {MAX_ACTION_LENGTH} characters")
        if action in RESERVED_ACTIONS:
            raise _refused(400, f"a: {action!r} is a reserved action")
        if body.get("email"):
            contact = self.find(f"email:{body['email']}")
        elif body.get("cID"):
            contact = self.find(str(body["cID"]))
        else:
            raise _refused(400, "a contact identifier (email or cID) is required")
        ats = body.get("ats")
        if ats is not None:
            try:
                datetime.fromisoformat(str(ats).replace("Z", "+00:00"))
            except ValueError:
                raise _refused(400, "ats: an ISO 8601 date-time") from None
        properties = body.get("properties") or {}
        if not isinstance(properties, dict):
            raise _refused(400, "properties: must be an object")
        kept = {}
        for key, value in properties.items():
            if STRIPPED_KEY.search(key):
                with self._lock:
                    self.stripped.append(key)
            else:
                kept[key] = value
        with self._lock:
            self.activities.append({"a": action, "contact": contact["_id"], "ats": ats,
                                    "properties": kept})


class _Throttled(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("throttled")
        self.headers = headers


def _email_address(body: dict[str, Any]) -> str:
    email = ((body.get("channels") or {}).get("email") or {}).get("address")
    if not isinstance(email, str) or not _EMAIL.match(email):
        raise _refused(400, "channels.email.address: a valid email is required (the contact's "
                            "key)")
    return email


def _typed(kind: str, value: Any) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "date":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return isinstance(value, str)


def make_app(fake: CordialFake | None = None) -> web.Application:
    """The Cordial fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or CordialFake()
    app = fake_app(FAKE_KEY, fake)

    handle = json_handler(fake, lambda request, body: _answer(fake, request, body))

    app.router.add_get(PREFIX + CONTACT_PATH, handle)
    app.router.add_put(PREFIX + CONTACT_PATH, handle)
    app.router.add_post(PREFIX + CONTACTS_PATH, handle)
    app.router.add_post(PREFIX + ACTIVITIES_PATH, handle)
    return app


def _answer(fake: CordialFake, request: web.Request, body: Any) -> web.Response:
    headers: dict[str, str] = {}
    try:
        fake.check_auth(request.headers.get("Authorization"))
        template = request.match_info.route.resource.canonical  # type: ignore[union-attr]
        headers = fake.take(f"{request.method} {template}")
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return web.Response(status=reply.status, text=reply.body,
                                headers={**headers, **reply.headers})
        if request.method == "GET":
            return web.json_response(fake.find(request.match_info["key"]), headers=headers)
        if not isinstance(body, dict):
            raise _refused(400, "the body must be a JSON object")
        if request.path.endswith(ACTIVITIES_PATH):
            fake.activity(body)
            return web.json_response({"success": True}, headers=headers)
        if request.method == "POST":
            contact = fake.create(body)
            return web.json_response({"success": True, "message": "contact created",
                                      "_id": contact["_id"]}, headers=headers)
        contact = fake.update(request.match_info["key"], body)
        return web.json_response({"success": True, "message": "contact updated",
                                  "_id": contact["_id"]}, headers=headers)
    except _Throttled as throttled:
        return web.json_response({"error": True, "message": "rate limit exceeded"},
                                 status=429, headers=throttled.headers)
    except Refused as refused:
        return refused.response(headers)


DEMO_KEY = "demo-cordial-key"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Cordial destination (the register_demo_destinations hook)."""
    fake = CordialFake(api_key=DEMO_KEY)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        what = body.get("a") or ", ".join(sorted(k for k in body if k != "channels"))
        return f"{entry['method']} {entry['path'].removeprefix(PREFIX)} {what} -> " \
               f"{entry['status']}"

    def state() -> list[str]:
        contacts = server.call(lambda: copy.deepcopy(fake.contacts))
        return [f"contact {email}: email {c['channels'].get('email', {}).get('subscribeStatus')}"
                for email, c in sorted(contacts.items())]

    return DemoDestination(
        "cordial",
        {"plugin": "cordial",
         "settings": {"base_url": server.url + PREFIX, "api_key": DEMO_KEY},
         # The demo's anonymous visitor has no email, Cordial's key: skipped by the rule
         # instead of dead-lettered.
         "rules": {"only_identified": True},
         "mapping": {"options": {"attributes": {"firstName": "first_name",
                                                "lastName": "last_name", "plan": "plan",
                                                "lifetime_value": "lifetime_value"}}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Cordial contract fake.", 8092)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    args = parser.parse_args(argv)
    fake = CordialFake(api_key=args.api_key, latency=args.latency)
    run_fake(make_app(fake), args, f"Cordial fake on {{url}}{PREFIX} (key {args.api_key}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()
