"""The Brevo destination: contacts created or updated by email with their attributes, lists and
channel blacklists following the person's consent, and events through Brevo's Events API.

    identify   POST /v3/contacts  {email, attributes, listIds, emailBlacklisted, ...,
                                   updateEnabled: true}                (one upsert)
               with settings.double_opt_in and the email consent granted:
               GET /v3/contacts/{email}   is the contact already in one of the lists?
               then POST /v3/contacts/doubleOptinConfirmation (not yet: Brevo sends the
               confirmation email, the lists are joined by confirming) or the upsert
    track      POST /v3/events    {event_name, identifiers, event_date, event_properties}

`updateEnabled: true` makes the create an upsert keyed by the email, so a plain identify is
one request, safe to repeat. Double opt-in reads first (a `FollowUp` flow) so that a contact
already confirmed is not sent another confirmation email.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from crossdock.dates import DateError, parse_date
from crossdock.destination import (
    DELIVERED,
    Destination,
    Failed,
    FieldRefused,
    FollowUp,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    Retry,
    http_outcome,
    json_content,
    parse_retry_after,
    response_json,
    secret_rate_key,
    short_body,
)
from crossdock.phones import PhoneError
from crossdock.plugins.brevo.const import (
    API_KEY_HEADER,
    CONTACT_PATH,
    CONTACTS_BUCKET,
    CONTACTS_PATH,
    DOI_PATH,
    EVENTS_BUCKET,
    EVENTS_PATH,
    MAX_EVENT_PROPERTIES_BYTES,
    MAX_NAME_LENGTH,
    NAME,
    NOT_NAME_CHARACTER,
    PLUGIN_NAME,
    SMS_ATTRIBUTE,
)
from crossdock.plugins.brevo.settings import BrevoOptions, BrevoSettings

# The steps; `classify` reads an answer by the step that asked.
READ, UPSERT, DOI, EVENT = "read", "upsert", "doi", "event"
BUCKETS = {READ: CONTACTS_BUCKET, UPSERT: CONTACTS_BUCKET, DOI: CONTACTS_BUCKET,
           EVENT: EVENTS_BUCKET}
#: the consent purpose that decides each channel's blacklist
CHANNELS = {"email": "emailBlacklisted", "sms": "smsBlacklisted"}


class BrevoDestination(Destination[BrevoSettings, BrevoOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/brevo.md",
        description="Brevo (Sendinblue): contacts upserted by email with attributes, lists and "
                    "consent-driven blacklists, double opt-in, events",
        message_types=frozenset({"track", "identify"}), auth="api_key",
        # Brevo's general tier: 10 requests per second on /v3/contacts and on /v3/events.
        rate_limit=10.0)

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> list[Planned]:
        """The flow's first request, after a FieldRefused for each value left out;
        ItemRejected when nothing can be sent."""
        refused: list[tuple[str, str]] = []
        payload = item.payload
        if payload.get("type") == "identify":
            if self.double_opt_in_applies(payload):
                email = self.opts.email_of(payload)
                assert email is not None
                self.contact_body(payload, refused)  # what would be left out, reported now
                first = self.planned(self.request("GET", self.contact_path(email)), item, READ)
            else:
                # With double opt-in, lists are joined only by confirming.
                lists = self.settings.double_opt_in is None
                first = self.planned(self.upsert(payload, refused, lists=lists), item, UPSERT)
        else:
            first = self.planned(self.event(payload, refused), item, EVENT)
        return [*(FieldRefused(item, name, why) for name, why in refused), first]

    def phone(self, payload: dict[str, Any], refused: list[tuple[str, str]]) -> str | None:
        """The phone in E.164, or None (reported in `refused` when there was one Brevo could
        not use)."""
        try:
            return self.opts.phone_of(payload)
        except PhoneError as exc:
            refused.append((f"attributes.{SMS_ATTRIBUTE}", f"left out: {exc}"))
            return None

    def ext_id(self, payload: dict[str, Any]) -> str | None:
        user_id = payload.get("userId")
        return str(user_id) if self.opts.ext_id and user_id else None

    def granted(self, payload: dict[str, Any], purpose: str) -> bool | None:
        """Whether the person granted `purpose`; None when the mapping reads no consent."""
        consent = payload.get("consent")
        if not isinstance(consent, dict):
            return None
        return consent.get(purpose) is True

    def double_opt_in_applies(self, payload: dict[str, Any]) -> bool:
        return (self.settings.double_opt_in is not None
                and self.opts.email_of(payload) is not None
                and self.granted(payload, "email") is True)

    def contact_body(self, payload: dict[str, Any], refused: list[tuple[str, str]]
                     ) -> dict[str, Any]:
        """The contact's identifiers and attributes (without lists and blacklists)."""
        email = self.opts.email_of(payload)
        attributes: dict[str, Any] = {}
        traits = payload.get("traits") or {}
        for trait, name in self.opts.attributes.items():
            value = traits.get(trait)
            if name is None or value is None:
                continue
            if name in self.opts.date_attributes:
                try:
                    year, month, day = parse_date(str(value), self.opts.date_order)
                except DateError as exc:
                    refused.append((f"attributes.{name}", f"left out: {exc}"))
                    continue
                value = f"{year:04d}-{month:02d}-{day:02d}"
            if _attribute_value(value):
                attributes[name] = value
            else:
                refused.append((f"attributes.{name}", "left out: Brevo attribute values are "
                                                      "text, numbers, booleans or lists of "
                                                      "text"))
        if self.opts.sms_attribute:
            phone = self.phone(payload, refused)
            if phone is not None:
                attributes[SMS_ATTRIBUTE] = phone
        ext_id = self.ext_id(payload)
        if email is None and ext_id is None and SMS_ATTRIBUTE not in attributes:
            raise ItemRejected("email: Brevo keys contacts by email, SMS or ext_id; this "
                               "person has none")
        body: dict[str, Any] = {}
        if email is not None:
            body["email"] = email
        if ext_id is not None:
            body["ext_id"] = ext_id
        if attributes:
            body["attributes"] = attributes
        return body

    def upsert(self, payload: dict[str, Any], refused: list[tuple[str, str]], *,
               lists: bool) -> httpx.Request:
        """POST /contacts with updateEnabled: the contact created, or updated when Brevo
        knows its email. `lists`: whether a granted email consent adds settings.list_ids."""
        body = self.contact_body(payload, refused)
        email_granted = self.granted(payload, "email")
        if lists and email_granted and self.settings.list_ids:
            body["listIds"] = list(self.settings.list_ids)
        for purpose, flag in CHANNELS.items():
            granted = self.granted(payload, purpose)
            if granted is None:
                continue  # the mapping reads no consent: leave Brevo's blacklists alone
            if granted and self.settings.resubscribe:
                body[flag] = False
            elif not granted and self.opts.blacklist_without_consent:
                body[flag] = True
        body["updateEnabled"] = True
        return self.request("POST", CONTACTS_PATH, body)

    def double_opt_in(self, payload: dict[str, Any]) -> httpx.Request:
        doi = self.settings.double_opt_in
        assert doi is not None
        body = self.contact_body(payload, [])
        body.pop("ext_id", None)  # the DOI flow takes the email and attributes only
        body.update(includeListIds=list(self.settings.list_ids), templateId=doi.template_id,
                    redirectionUrl=str(doi.redirection_url))
        return self.request("POST", DOI_PATH, body)

    def event(self, payload: dict[str, Any], refused: list[tuple[str, str]]) -> httpx.Request:
        name = str(payload.get("event") or "")
        if self.opts.normalize_event_names:
            name = NOT_NAME_CHARACTER.sub("_", name)
        if not name:
            raise ItemRejected("event: missing; a Brevo event needs a name")
        if len(name) > MAX_NAME_LENGTH:
            raise ItemRejected(f"event: longer than Brevo's {MAX_NAME_LENGTH} characters for "
                               "an event name: shorten it in mapping.event_names")
        if not NAME.match(name):
            raise ItemRejected(f"event: {name[:60]!r} has characters Brevo refuses (letters, "
                               "digits, - and _ only): rename it in mapping.event_names or "
                               "set mapping.options.normalize_event_names")
        body: dict[str, Any] = {"event_name": name,
                                "identifiers": self.identifiers(payload, refused)}
        if payload.get("timestamp"):
            body["event_date"] = payload["timestamp"]
        properties = _checked_keys(payload.get("properties") or {}, "properties", refused)
        if properties:
            if len(json_content(properties)) > MAX_EVENT_PROPERTIES_BYTES:
                raise ItemRejected(f"properties: more than Brevo's "
                                   f"{MAX_EVENT_PROPERTIES_BYTES // 1024} KB for an event's "
                                   "properties: leave some out in the filter")
            body["event_properties"] = properties
        return self.request("POST", EVENTS_PATH, body)

    def identifiers(self, payload: dict[str, Any], refused: list[tuple[str, str]]
                    ) -> dict[str, str]:
        """The event's contact, by the first of: email, ext_id (the userId, with
        options.ext_id), the phone in E.164."""
        email = self.opts.email_of(payload)
        if email is not None:
            return {"email_id": email}
        ext_id = self.ext_id(payload)
        if ext_id is not None:
            return {"ext_id": ext_id}
        phone = self.phone(payload, refused)
        if phone is not None:
            return {"phone_id": phone}
        raise ItemRejected("identifiers: Brevo names an event's contact by email, ext_id or "
                           "phone; this person has none")

    def contact_path(self, email: str) -> str:
        return CONTACT_PATH.format(identifier=quote(email, safe=""))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None
                ) -> httpx.Request:
        headers = {API_KEY_HEADER: self.settings.api_key.get_secret_value(),
                   "accept": "application/json"}
        if body is None:
            return httpx.Request(method, self.settings.root + path, headers=headers)
        return httpx.Request(method, self.settings.root + path, content=json_content(body),
                             headers={**headers, "content-type": "application/json"})

    def planned(self, request: httpx.Request, item: OutboxItem, step: str) -> PlannedRequest:
        return PlannedRequest(request, [item], self.rate_key(step), step)

    def rate_key(self, step: str) -> str:
        """Every /v3/contacts endpoint shares one limit and /v3/events has its own, per key
        (hashed, never shown)."""
        return secret_rate_key(f"brevo:{BUCKETS[step]}",
                               self.settings.api_key.get_secret_value())

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | FollowUp:
        status = response.status_code
        if planned.step == READ and status in (200, 404):
            (item,) = planned.items
            payload = item.payload
            contact = response_json(response) if status == 200 else None
            if status == 200 and contact is None:
                # Not Brevo's contact (a proxy's page): it says nothing about the lists.
                return Retry(f"HTTP 200 without Brevo's contact: {short_body(response)}")
            joined = set((contact or {}).get("listIds") or []) & set(self.settings.list_ids)
            if joined:
                # Confirmed already: update it; the lists stay as they are.
                return FollowUp(self.upsert(payload, [], lists=False), UPSERT,
                                self.rate_key(UPSERT))
            return FollowUp(self.double_opt_in(payload), DOI, self.rate_key(DOI))
        if 200 <= status < 300:
            return DELIVERED
        return self.error(response)

    def error(self, response: httpx.Response) -> Outcome:
        """Brevo's error body ({code, message}) read into the outcome's reason."""
        status = response.status_code
        body = response_json(response) or {}
        code, message = body.get("code"), body.get("message")
        reason = (f"brevo {status} {code}: {message}" if isinstance(code, str)
                  else f"HTTP {status}: {short_body(response)}")
        if status == 401:
            return Failed(f"bad credentials ({reason})")
        if status == 429:
            # Brevo sends no Retry-After: the window resets in x-sib-ratelimit-reset seconds.
            after = parse_retry_after(response.headers.get("retry-after"))
            if after is None:
                after = parse_retry_after(response.headers.get("x-sib-ratelimit-reset"))
            return Retry(reason, after)
        return http_outcome(response, reason)


def _attribute_value(value: Any) -> bool:
    """What a contact attribute takes: text, a number, a boolean, or a list of text."""
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _checked_keys(value: dict[str, Any], path: str, refused: list[tuple[str, str]]
                  ) -> dict[str, Any]:
    """`value` without the keys Brevo refuses in event properties (more than 255 characters,
    or characters other than letters, digits, - and _), at every depth; each one left out is
    reported in `refused`."""
    kept: dict[str, Any] = {}
    for key, inner in value.items():
        where = f"{path}.{key}"
        if not NAME.match(key):
            refused.append((where, "left out: Brevo property keys are at most 255 letters, "
                                   "digits, - and _ (keys.normalize in the mapping)"))
            continue
        if isinstance(inner, dict):
            inner = _checked_keys(inner, where, refused)
        elif isinstance(inner, list):
            inner = [_checked_keys(v, where, refused) if isinstance(v, dict) else v
                     for v in inner]
        kept[key] = inner
    return kept
