"""The Cordial destination: contacts upserted with their channels and subscribe statuses, and
events as contact activities, through Cordial's REST API v2.

    identify   GET  /v2/contacts/email:{address}    read: does the contact exist, and how is
                                                     it subscribed on each channel?
               then PUT /v2/contacts/email:{address} (found) or POST /v2/contacts (not found)
    track      POST /v2/contactactivities           (a 404 for an unknown contact: POST the
                                                     contact, then the activity again)

A contact is keyed by its email (Cordial's primary key, `channels.email.address`). Cordial
documents no upsert, so an identify reads before it writes, as a `FollowUp` flow the engine
runs (a failure at any step starts again from the read, which is safe to repeat). The read
also tells what each channel's subscribe status is in Cordial, which decides what the consent
may change: a contact who unsubscribed in Cordial is not subscribed again unless the
operator says so (settings.force_subscribe: Cordial's forceSubscribe, and CAN-SPAM).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from crossdock.destination import (
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
    basic_auth,
    http_outcome,
    json_content,
    response_json,
    secret_rate_key,
    short_body,
)
from crossdock.phones import PhoneError
from crossdock.plugins.cordial.const import (
    ACTIVITIES_PATH,
    CHANNEL_CONSENT,
    CONTACT_PATH,
    CONTACTS_PATH,
    MAX_ACTION_LENGTH,
    PLUGIN_NAME,
    RESERVED_ACTIONS,
    STRIPPED_KEY,
    SUBSCRIBED,
    UNSUBSCRIBED,
)
from crossdock.plugins.cordial.settings import CordialOptions, CordialSettings

# The steps of the flows; `classify` reads an answer by the step that asked.
READ, CREATE, UPDATE = "read", "create", "update"
ACTIVITY, ACTIVITY_CONTACT, ACTIVITY_AGAIN = "activity", "activity-contact", "activity-again"
#: the endpoint each step calls: Cordial limits each method and endpoint on its own
ENDPOINTS = {READ: f"GET {CONTACT_PATH}", UPDATE: f"PUT {CONTACT_PATH}",
             CREATE: f"POST {CONTACTS_PATH}", ACTIVITY_CONTACT: f"POST {CONTACTS_PATH}",
             ACTIVITY: f"POST {ACTIVITIES_PATH}", ACTIVITY_AGAIN: f"POST {ACTIVITIES_PATH}"}


class CordialDestination(Destination[CordialSettings, CordialOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/cordial.md",
        description="Cordial: contacts with channels and subscribe status, events as contact "
                    "activities",
        message_types=frozenset({"track", "identify"}), auth="basic")

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> list[Planned]:
        """The flow's first request, after a FieldRefused for each value left out;
        ItemRejected when nothing can be sent."""
        refused: list[tuple[str, str]] = []
        first = self.first_request(item, refused)
        return [*(FieldRefused(item, name, why) for name, why in refused), first]

    def first_request(self, item: OutboxItem, refused: list[tuple[str, str]]
                      ) -> PlannedRequest:
        payload = item.payload
        email = self.email(payload)
        self.phone(payload, refused)
        if payload.get("type") == "identify":
            return self.planned(self.request("GET", self.contact_path(email)), item, READ)
        return self.planned(self.activity(payload, email, refused), item, ACTIVITY)

    def email(self, payload: dict[str, Any]) -> str:
        email = self.opts.email_of(payload)
        if email is None:
            raise ItemRejected("email: Cordial keys contacts by email (channels.email.address); "
                            "this person has none")
        return email

    def phone(self, payload: dict[str, Any], refused: list[tuple[str, str]]) -> str | None:
        """The SMS channel's number in E.164, or None (reported in `refused` when there was
        one Cordial could not use)."""
        try:
            return self.opts.phone_of(payload)
        except PhoneError as exc:
            refused.append(("channels.sms.address", f"left out: {exc}"))
            return None

    def contact_path(self, email: str) -> str:
        return CONTACT_PATH.format(key="email:" + quote(email, safe="@"))

    def contact_body(self, payload: dict[str, Any], existing: dict[str, Any] | None
                     ) -> dict[str, Any]:
        """The contact's channels, statuses and attributes; `existing` is Cordial's record
        of it (None for a new contact)."""
        email = self.email(payload)
        channels: dict[str, dict[str, Any]] = {"email": {"address": email}}
        phone = self.phone(payload, [])
        if phone is not None:
            channels["sms"] = {"address": phone}
        body: dict[str, Any] = {"channels": channels}
        force = False
        if self.opts.subscribe_status:
            consent = payload.get("consent") or {}
            known = (existing or {}).get("channels") or {}
            for name, channel in channels.items():
                current = (known.get(name) or {}).get("subscribeStatus")
                status, forced = self.status(consent.get(CHANNEL_CONSENT[name]) is True,
                                             current)
                if status is not None:
                    channel["subscribeStatus"] = status
                force = force or forced
        if force:
            body["forceSubscribe"] = True
        traits = payload.get("traits") or {}
        for trait, key in self.opts.attributes.items():
            if key is not None and traits.get(trait) is not None:
                body[key] = traits[trait]
        if self.opts.user_id_attribute and payload.get("userId"):
            body[self.opts.user_id_attribute] = str(payload["userId"])
        return body

    def status(self, granted: bool, current: str | None) -> tuple[str | None, bool]:
        """(the subscribe status to send or None to leave Cordial's, whether forcing it).

        Granted: subscribe, but a contact who unsubscribed in Cordial only when forcing is
        allowed. Not granted: unsubscribe a subscribed contact; a new or never-subscribed
        one stays as it is (none), since not granted is not always "said no"."""
        if granted:
            if current == SUBSCRIBED:
                return None, False
            if current == UNSUBSCRIBED:
                return (SUBSCRIBED, True) if self.settings.force_subscribe else (None, False)
            return SUBSCRIBED, False
        return (UNSUBSCRIBED, False) if current == SUBSCRIBED else (None, False)

    def activity(self, payload: dict[str, Any], email: str, refused: list[tuple[str, str]]
                 ) -> httpx.Request:
        action = str(payload.get("event") or "")
        if not action:
            raise ItemRejected("event: missing; a Cordial activity needs an action name")
        if len(action) > MAX_ACTION_LENGTH:
            raise ItemRejected(f"event: {action[:60]!r} is longer than Cordial's "
                            f"{MAX_ACTION_LENGTH} characters for an action: shorten it in "
                            "mapping.event_names")
        if action in RESERVED_ACTIONS:
            raise ItemRejected(f"event: {action!r} is an action Cordial records itself: rename "
                            "it in mapping.event_names")
        properties = {}
        for key, value in (payload.get("properties") or {}).items():
            if STRIPPED_KEY.search(key):
                refused.append((f"properties.{key}", "Cordial strips a key of only digits or "
                                                     "holding a dot (keys.normalize in the "
                                                     "mapping)"))
            else:
                properties[key] = value
        body: dict[str, Any] = {"email": email, "a": action}
        if payload.get("timestamp"):
            body["ats"] = payload["timestamp"]
        if properties:
            body["properties"] = properties
        return self.request("POST", ACTIVITIES_PATH, body)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None
                ) -> httpx.Request:
        headers = {"authorization": basic_auth(self.settings.api_key.get_secret_value(), ""),
                   "accept": "application/json"}
        if body is None:
            return httpx.Request(method, self.settings.root + path, headers=headers)
        return httpx.Request(method, self.settings.root + path, content=json_content(body),
                             headers={**headers, "content-type": "application/json"})

    def planned(self, request: httpx.Request, item: OutboxItem, step: str) -> PlannedRequest:
        return PlannedRequest(request, [item], self.rate_key(step), step)

    def follow(self, request: httpx.Request, step: str) -> FollowUp:
        return FollowUp(request, step, self.rate_key(step))

    def rate_key(self, step: str) -> str:
        """The limit a step's request shares: its method and endpoint, per key (hashed)."""
        return secret_rate_key(f"cordial:{ENDPOINTS[step]}",
                               self.settings.api_key.get_secret_value())

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | FollowUp:
        status = response.status_code
        if status in (401, 403):
            return Failed(f"bad credentials (HTTP {status}): {short_body(response)}")
        (item,) = planned.items
        payload = item.payload
        step = planned.step
        email = self.email(payload)
        read = self.request("GET", self.contact_path(email))
        create = self.request("POST", CONTACTS_PATH, self.contact_body(payload, None))
        if step == READ and status == 200:
            existing = response_json(response)
            if existing is None:
                # Not Cordial's contact (a proxy's page): it says nothing about the contact.
                return Retry(f"HTTP 200 without Cordial's contact: {short_body(response)}")
            return self.follow(self.request("PUT", self.contact_path(email),
                                            self.contact_body(payload, existing)), UPDATE)
        if step == READ and status == 404:
            return self.follow(create, CREATE)
        if step == CREATE and status == 409:
            # Created meanwhile (another profile with this email): read it again.
            return self.follow(read, READ)
        if step == UPDATE and status == 404:
            # Deleted since it was read: create it.
            return self.follow(create, CREATE)
        if step == ACTIVITY and status == 404:
            # Cordial does not know the contact yet: create it, then send the activity again.
            return self.follow(create, ACTIVITY_CONTACT)
        if step == ACTIVITY_CONTACT and (200 <= status < 300 or status == 409):
            return self.follow(self.activity(payload, email, []), ACTIVITY_AGAIN)
        return http_outcome(response)


