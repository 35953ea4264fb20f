"""Contract fake of Brevo's API v3 (contacts, double opt-in, events): a real HTTP server that
refuses what Brevo refuses.

    GET  /v3/contacts/{identifier}             read a contact (email or id)     -> 200 / 404
    POST /v3/contacts                          create, or update with
                                               updateEnabled: true              -> 201 / 204
    POST /v3/contacts/doubleOptinConfirmation  send the confirmation email      -> 201 / 204
    POST /v3/events                            record an event                  -> 204

The contract it enforces (sources on docs/destinations/brevo.md):
- the API key in the `api-key` header: none or another key -> 401 `unauthorized`;
- a contact needs an email, an SMS attribute or an ext_id -> else 400 `missing_parameter`;
  an email must be one, an SMS number is digits with a country code (91xxxxxxxxxx,
  +91xxxxxxxxxx or 0091xxxxxxxxxx) -> else 400 `invalid_parameter`;
- attribute names must exist in the account (`attributes`, upper case) -> else 400
  `invalid_parameter` (the stricter reading); a value that does not match the attribute's
  type is ignored (recorded in `ignored`), as Brevo documents; list ids must exist -> else 404
  `document_not_found`;
- creating a contact whose email, SMS or ext_id another contact has, without
  `updateEnabled: true` -> 400 `duplicate_parameter`; with it the contact is updated (204);
- double opt-in needs `email`, `includeListIds`, `templateId` (a DOI template of the
  account) and `redirectionUrl` -> else 400 / 404; the contact joins the lists only when the
  person confirms (`fake.confirm(email)`);
- an event has an `event_name` of at most 255 letters, digits, - and _; `identifiers` with
  at least one of contact_id, email_id, ext_id, phone_id, whatsapp_id, landline_number_id;
  an ISO 8601 `event_date`; `event_properties` of at most 50 KB whose keys (at every depth)
  follow the event name's rule -> else 400 `invalid_parameter`;
- rate limits per bucket (every /v3/contacts endpoint shares one, /v3/events has its own),
  per second and per hour, the general tier by default -> 429 with `x-sib-ratelimit-limit`,
  `x-sib-ratelimit-remaining` and `x-sib-ratelimit-reset` (no Retry-After), the headers on
  every answer of a limited endpoint.
Scripted replies (`fake.script([500])`) answer first.

    python -m crossdock.plugins.brevo.fake --port 8093 --api-key demo-key
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from crossdock.plugins.brevo.const import (
    CONTACT_PATH,
    CONTACTS_BUCKET,
    CONTACTS_PATH,
    DOI_PATH,
    EVENT_IDENTIFIERS,
    EVENTS_BUCKET,
    EVENTS_PATH,
    GENERAL_LIMITS,
    MAX_EVENT_PROPERTIES_BYTES,
    NAME,
    RATELIMIT_HEADERS,
    SMS_ATTRIBUTE,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, fake_app, json_handler
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[BrevoFake] = web.AppKey("brevo_fake")
DEFAULT_KEY = "xkeysib-test-key"
PREFIX = "/v3"
#: the attributes a new Brevo account defines, with their types
DEFAULT_ATTRIBUTES = {"FIRSTNAME": "text", "LASTNAME": "text", "SMS": "text", "EXT_ID": "text",
                      "PLAN": "text", "LIFETIME_VALUE": "float", "BIRTHDAY": "date",
                      "VIP": "boolean", "INTERESTS": "multiple-choice"}
DEFAULT_LISTS = frozenset({2, 3, 7})
DEFAULT_DOI_TEMPLATES = frozenset({11})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: the SMS formats Brevo accepts: a country code, with +, 00 or nothing before it
_SMS = re.compile(r"^(\+|00)?[1-9]\d{6,14}$")


def _refused(status: int, code: str, message: str) -> Refused:
    """A request Brevo answers with an error status and body."""
    return Refused(status, {"code": code, "message": message})


class _Throttled(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("throttled")
        self.headers = headers


@dataclass
class BrevoFake(FakeState):
    """What the Brevo fake knows (the key, the account's attributes, lists and DOI templates,
    its rate limits) and holds (contacts by id, events, double opt-ins sent, what it ignored,
    every request it answered)."""

    api_key: str = DEFAULT_KEY
    attributes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    lists: frozenset[int] = DEFAULT_LISTS
    doi_templates: frozenset[int] = DEFAULT_DOI_TEMPLATES
    #: (per second, per hour) by bucket; None: no limits
    rate_limits: dict[str, tuple[int, int]] | None = field(
        default_factory=lambda: dict(GENERAL_LIMITS))
    clock: Callable[[], float] = time.monotonic
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    doi_sent: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    _windows: dict[str, tuple[FixedWindow, FixedWindow]] = field(default_factory=dict,
                                                                 repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.contacts.clear()
            self.events.clear()
            self.doi_sent.clear()
            self.ignored.clear()
            self._windows.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(contacts=copy.deepcopy(list(self.contacts.values())),
                        events=list(self.events), doi_sent=list(self.doi_sent),
                        ignored=list(self.ignored))
        return snap

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]

    def by_email(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            return next((c for c in self.contacts.values()
                         if (c.get("email") or "").lower() == email.lower()), None)

    # -- the contract ------------------------------------------------------------------

    def check_auth(self, key: str | None) -> None:
        if not key:
            raise _refused(401, "unauthorized", "Key not found")
        if key != self.api_key:
            raise _refused(401, "unauthorized", "Key not found")

    def take(self, bucket: str) -> dict[str, str]:
        """Count one request against the bucket's per-second and per-hour windows: the rate
        headers of the tighter one, or _Throttled when either has none left."""
        limits = (self.rate_limits or {}).get(bucket)
        if limits is None:
            return {}
        with self._lock:
            windows = self._windows.setdefault(bucket, (
                FixedWindow(limits[0], 1.0, self.clock), FixedWindow(limits[1], 3600.0,
                                                                     self.clock)))
        second = windows[0].take(bucket)
        if not second.allowed:
            raise _Throttled(second.headers(RATELIMIT_HEADERS))
        hour = windows[1].take(bucket)
        if not hour.allowed:
            raise _Throttled(hour.headers(RATELIMIT_HEADERS))
        return second.headers(RATELIMIT_HEADERS)

    def find(self, identifier: str, kind: str | None = None) -> dict[str, Any]:
        """A contact by the path's identifier: an email or a contact id (or, with
        identifierType, an ext_id or an SMS number)."""
        kind = kind or ("contact_id" if identifier.isdigit() else "email_id")
        with self._lock:
            for contact in self.contacts.values():
                value = {"contact_id": str(contact["id"]), "email_id": contact.get("email"),
                         "ext_id": contact.get("ext_id"),
                         "phone_id": contact["attributes"].get(SMS_ATTRIBUTE)}.get(kind)
                if value is not None and str(value).lower() == identifier.lower():
                    return contact
        if kind not in ("contact_id", "email_id", "ext_id", "phone_id"):
            raise _refused(400, "invalid_parameter", f"identifierType {kind} is not valid")
        raise _refused(404, "document_not_found", "Contact does not exist")

    def upsert(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /contacts: (201, the new contact) or (204, the updated one)."""
        email = body.get("email")
        ext_id = body.get("ext_id")
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _refused(400, "invalid_parameter", "attributes should be an object")
        sms = attributes.get(SMS_ATTRIBUTE)
        if email is None and ext_id is None and sms is None:
            raise _refused(400, "missing_parameter", "email, ext_id or attributes.SMS is "
                                                     "required")
        if email is not None and not (isinstance(email, str) and _EMAIL.match(email)):
            raise _refused(400, "invalid_parameter", "Invalid email address")
        existing, others = self._matching(email, ext_id, sms)
        if others:
            raise _refused(400, "duplicate_parameter", "an identifier (SMS or ext_id) belongs "
                                                       "to another contact")
        if existing is not None and body.get("updateEnabled") is not True:
            raise _refused(400, "duplicate_parameter", "Contact already exist")
        contact = copy.deepcopy(existing) if existing else {
            "id": 0, "email": None, "ext_id": None, "emailBlacklisted": False,
            "smsBlacklisted": False, "listIds": [], "attributes": {}}
        self._apply(contact, body)
        with self._lock:
            if existing is None:
                contact["id"] = len(self.contacts) + 1
            self.contacts[contact["id"]] = contact
        return (204 if existing else 201), contact

    def _matching(self, email: Any, ext_id: Any, sms: Any
                  ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The contact the request is about (by email, else ext_id, else SMS), and the other
        contacts that hold one of its identifiers (a conflict)."""
        def holds(contact: dict[str, Any]) -> tuple[bool, bool, bool]:
            return ((email is not None
                     and (contact.get("email") or "").lower() == str(email).lower()),
                    ext_id is not None and contact.get("ext_id") == ext_id,
                    sms is not None and contact["attributes"].get(SMS_ATTRIBUTE) == sms)

        with self._lock:
            holding = [(c, holds(c)) for c in self.contacts.values() if any(holds(c))]
        # The key: the email when there is one, else the ext_id, else the SMS number.
        key = 0 if email is not None else 1 if ext_id is not None else 2
        existing = next((c for c, held in holding if held[key]), None)
        others = [c for c, _ in holding if c is not existing]
        return existing, others

    def _apply(self, contact: dict[str, Any], body: dict[str, Any]) -> None:
        """Check `body` whole, then change `contact`: nothing changes when a rule breaks."""
        attributes = self._attributes(body.get("attributes") or {})
        list_ids = body.get("listIds", body.get("includeListIds")) or []
        self._check_lists(list_ids, "listIds")
        for flag in ("emailBlacklisted", "smsBlacklisted", "updateEnabled"):
            if flag in body and not isinstance(body[flag], bool):
                raise _refused(400, "invalid_parameter", f"{flag} should be a boolean")
        if body.get("email") is not None and contact["email"] is None:
            # An upsert matched by email keeps the address as it was first written.
            contact["email"] = body["email"]
        if body.get("ext_id") is not None:
            contact["ext_id"] = body["ext_id"]
        contact["attributes"].update(attributes)
        contact["listIds"] = sorted(set(contact["listIds"]) | set(list_ids))
        for flag in ("emailBlacklisted", "smsBlacklisted"):
            if flag in body:
                contact[flag] = body[flag]

    def _check_lists(self, list_ids: Any, name: str) -> None:
        if not isinstance(list_ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in list_ids):
            raise _refused(400, "invalid_parameter", f"{name} should be a list of integers")
        unknown = sorted(set(list_ids) - self.lists)
        if unknown:
            raise _refused(404, "document_not_found", f"List ID {unknown[0]} does not exist")

    def _attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for name, value in attributes.items():
            kind = self.attributes.get(name)
            if kind is None:
                raise _refused(400, "invalid_parameter", f"Attribute {name} does not exist in "
                                                         "the account (names are upper case)")
            if name == SMS_ATTRIBUTE and not (isinstance(value, str) and _SMS.match(value)):
                raise _refused(400, "invalid_parameter", "Invalid phone number: SMS needs a "
                                                         "country code (+91xxxxxxxxxx)")
            if _typed(kind, value):
                kept[name] = value
            else:
                with self._lock:
                    self.ignored.append(name)
        return kept

    def double_opt_in(self, body: dict[str, Any]) -> int:
        email = body.get("email")
        if not (isinstance(email, str) and _EMAIL.match(email)):
            raise _refused(400, "invalid_parameter" if email else "missing_parameter",
                           "a valid email is required")
        for required in ("includeListIds", "templateId", "redirectionUrl"):
            if body.get(required) in (None, [], ""):
                raise _refused(400, "missing_parameter", f"{required} is required")
        self._check_lists(body["includeListIds"], "includeListIds")
        template = body["templateId"]
        if not isinstance(template, int) or isinstance(template, bool):
            raise _refused(400, "invalid_parameter", "templateId should be an integer")
        if template not in self.doi_templates:
            raise _refused(404, "document_not_found", "Template ID does not exist or is not a "
                                                      "double opt-in template")
        url = body["redirectionUrl"]
        if not (isinstance(url, str) and re.match(r"^https?://\S+$", url)):
            raise _refused(400, "invalid_parameter", "redirectionUrl should be a URL")
        attributes = self._attributes(body.get("attributes") or {})
        existing = self.by_email(email)
        with self._lock:
            self.doi_sent.append({"email": email, "attributes": attributes,
                                  "includeListIds": list(body["includeListIds"]),
                                  "templateId": template, "redirectionUrl": url})
        if existing is not None:
            with self._lock:
                existing["attributes"].update(attributes)
            return 204
        return 201

    def confirm(self, email: str) -> dict[str, Any]:
        """The person clicks the link of the last confirmation email sent to `email`: the
        contact is created (or updated) and joins the lists."""
        sent = next(d for d in reversed(self.doi_sent) if d["email"] == email)
        _, contact = self.upsert({"email": email, "attributes": sent["attributes"],
                                  "listIds": sent["includeListIds"], "updateEnabled": True,
                                  "emailBlacklisted": False})
        return contact

    def event(self, body: dict[str, Any]) -> None:
        name = body.get("event_name")
        if not isinstance(name, str) or not name:
            raise _refused(400, "missing_parameter", "event_name is required")
        if not NAME.match(name):
            raise _refused(400, "invalid_parameter", "event_name: at most 255 characters, "
                                                     "alphanumeric, - and _ only")
        identifiers = body.get("identifiers")
        if not isinstance(identifiers, dict) or not any(
                identifiers.get(k) for k in EVENT_IDENTIFIERS):
            raise _refused(400, "missing_parameter", "identifiers: at least one identifier is "
                                                     "required")
        unknown = sorted(set(identifiers) - set(EVENT_IDENTIFIERS))
        if unknown:
            raise _refused(400, "invalid_parameter", f"identifiers.{unknown[0]} is not an "
                                                     "identifier")
        date = body.get("event_date")
        if date is not None:
            try:
                datetime.fromisoformat(str(date).replace("Z", "+00:00"))
            except ValueError:
                raise _refused(400, "invalid_parameter", "event_date: an ISO 8601 "
                                                         "timestamp") from None
        properties = body.get("event_properties")
        if properties is not None:
            if not isinstance(properties, dict):
                raise _refused(400, "invalid_parameter", "event_properties should be an object")
            bad = _bad_key(properties)
            if bad is not None:
                raise _refused(400, "invalid_parameter", f"event_properties: key {bad!r}: at "
                                                         "most 255 characters, alphanumeric, - "
                                                         "and _ only")
            if len(json.dumps(properties).encode()) > MAX_EVENT_PROPERTIES_BYTES:
                raise _refused(400, "invalid_parameter", "event_properties: larger than 50 KB")
        contact_properties = body.get("contact_properties")
        if contact_properties is not None and not isinstance(contact_properties, dict):
            raise _refused(400, "invalid_parameter", "contact_properties should be an object")
        with self._lock:
            self.events.append({"event_name": name, "identifiers": dict(identifiers),
                                "event_date": date, "event_properties": properties or {}})


def _bad_key(value: Any) -> str | None:
    """The first key, at any depth, that is not a Brevo property key."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not NAME.match(str(key)):
                return str(key)
            found = _bad_key(inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for inner in value:
            found = _bad_key(inner)
            if found is not None:
                return found
    return None


def _typed(kind: str, value: Any) -> bool:
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "date":
        return isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}", value) is not None
    if kind == "multiple-choice":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def make_app(fake: BrevoFake | None = None) -> web.Application:
    """The Brevo fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or BrevoFake()
    app = fake_app(FAKE_KEY, fake)

    def route(bucket: str, answer: Callable[[web.Request, Any], tuple[int, Any]]) -> Any:
        return json_handler(fake, lambda request, body: _answer(fake, request, body, bucket,
                                                                answer))

    def read(request: web.Request, body: Any) -> tuple[int, Any]:
        return 200, fake.find(request.match_info["identifier"],
                              request.query.get("identifierType"))

    def create(request: web.Request, body: Any) -> tuple[int, Any]:
        status, contact = fake.upsert(_object(body))
        return status, {"id": contact["id"]} if status == 201 else None

    def doi(request: web.Request, body: Any) -> tuple[int, Any]:
        return fake.double_opt_in(_object(body)), None

    def event(request: web.Request, body: Any) -> tuple[int, Any]:
        fake.event(_object(body))
        return 204, None

    # The DOI route first: its path would otherwise read as a contact's identifier.
    app.router.add_post(PREFIX + DOI_PATH, route(CONTACTS_BUCKET, doi))
    app.router.add_get(PREFIX + CONTACT_PATH, route(CONTACTS_BUCKET, read))
    app.router.add_post(PREFIX + CONTACTS_PATH, route(CONTACTS_BUCKET, create))
    app.router.add_post(PREFIX + EVENTS_PATH, route(EVENTS_BUCKET, event))
    return app


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _refused(400, "bad_request", "the body must be a JSON object")
    return body


def _answer(fake: BrevoFake, request: web.Request, body: Any, bucket: str,
            answer: Callable[[web.Request, Any], tuple[int, Any]]) -> web.Response:
    headers: dict[str, str] = {}
    try:
        fake.check_auth(request.headers.get("api-key"))
        headers = fake.take(bucket)
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return web.Response(status=reply.status, text=reply.body,
                                headers={**headers, **reply.headers})
        status, out = answer(request, body)
        if out is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(out, status=status, headers=headers)
    except _Throttled as throttled:
        return web.json_response({"code": "too_many_requests",
                                  "message": "The expected rate limit is exceeded."},
                                 status=429, headers=throttled.headers)
    except Refused as refused:
        return refused.response(headers)


DEMO_KEY = "xkeysib-demo-key"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Brevo destination (the register_demo_destinations hook)."""
    fake = BrevoFake(api_key=DEMO_KEY)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        what = body.get("event_name") or body.get("email") or ""
        return f"{entry['method']} {entry['path'].removeprefix(PREFIX)} {what} -> " \
               f"{entry['status']}"

    def state() -> list[str]:
        contacts = server.call(lambda: copy.deepcopy(list(fake.contacts.values())))
        events = server.call(lambda: len(fake.events))
        # Nobody in the demo grants the email consent: no lists, blacklisted.
        return [*(f"contact {c['email']}: {sorted(c['attributes'])}, lists {c['listIds']}, "
                  f"emailBlacklisted {c['emailBlacklisted']}"
                  for c in sorted(contacts, key=lambda c: c["email"] or "")),
                f"{events} events"]

    return DemoDestination(
        "brevo",
        {"plugin": "brevo",
         "settings": {"base_url": server.url + PREFIX, "api_key": DEMO_KEY, "list_ids": [2]},
         # The demo's anonymous visitor has no email: skipped by the rule instead of
         # dead-lettered.
         "rules": {"only_identified": True},
         "mapping": {"options": {"attributes": {"firstName": "FIRSTNAME",
                                                "lastName": "LASTNAME", "plan": "PLAN",
                                                "lifetime_value": "LIFETIME_VALUE"}}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Brevo contract fake.", 8093)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    args = parser.parse_args(argv)
    fake = BrevoFake(api_key=args.api_key, latency=args.latency)
    run_fake(make_app(fake), args, f"Brevo fake on {{url}}{PREFIX} (key {args.api_key}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()
