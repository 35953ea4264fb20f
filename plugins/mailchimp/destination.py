"""The Mailchimp destination: identify -> member upsert, audience changes -> tags, other track
events -> member events.

One `build_requests` call, per member (the subscriber hash of the email), in this order so a
member exists before its tags and events are sent:

1. upserts: every identify of a member in the batch merged into one body (later wins). When
   two or more members have a definite status (one the message states, `subscriptionStatus`;
   opted in without double opt-in -> subscribed; opted out -> unsubscribed) they go together
   through batch subscribe (`POST /lists/{id}`, 500 members a call, `update_existing: true`,
   `skip_merge_validation`); the rest, whose status must not change on an existing member,
   are `PUT /lists/{id}/members/{hash}` with `status_if_new`. A merge field value Mailchimp
   cannot take (a birthday that is no date, half an address) is left out and reported
   (`FieldRefused`); the member is still upserted;
2. tags: the member's audience_entered / audience_exited in one `POST .../tags` (last
   change per tag wins);
3. events: one `POST .../events` per other track event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from crossdock.dates import DateError, parse_date
from crossdock.destination import (
    DELIVERED,
    Destination,
    Failed,
    FieldRefused,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    Rejected,
    Retry,
    ValueRefused,
    basic_auth,
    chunks,
    first_value,
    http_outcome,
    json_request,
    parse_retry_after,
    response_json,
    secret_rate_key,
    short_body,
    stringify,
)
from crossdock.plugins.mailchimp.const import (
    ADDRESS_REQUIRED,
    AUDIENCE_ENTERED,
    AUDIENCE_EXITED,
    EVENT_NAME_MAX,
    EVENT_NAME_MIN,
    MAX_BATCH_MEMBERS,
    MAX_CONNECTIONS,
    MAX_RESPONSE_BYTES,
    MEMBER_STATUSES,
    PERMANENT_TITLES,
    PLUGIN_NAME,
)
from crossdock.plugins.mailchimp.settings import MailchimpOptions, MailchimpSettings

TAG_STATUS = {AUDIENCE_ENTERED: "active", AUDIENCE_EXITED: "inactive"}
#: ADDRESS part -> the names it is read from, in Segment's address object or as flat traits
_ADDRESS_KEYS = {"addr1": ("addr1", "street", "line1", "address1"),
                 "addr2": ("addr2", "line2", "address2"),
                 "city": ("city",), "state": ("state", "region"),
                 "zip": ("zip", "postalCode", "postal_code", "zipCode"),
                 "country": ("country", "countryCode")}
_BIRTHDAY_TAGS = ("BIRTHDAY", "BDAY")
_NOT_EVENT_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_NOT_KEY_CHARS = re.compile(r"[^A-Za-z0-9_]+")
_MONTH_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})$")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the trimmed, lower-cased email address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def event_name(name: str) -> str:
    """A Mailchimp event name: runs of characters other than letters, digits, _ and -
    become one "_", cut to 30 ("Order Completed" -> "Order_Completed")."""
    cleaned = _NOT_EVENT_CHARS.sub("_", name.strip()).strip("_")[:EVENT_NAME_MAX].rstrip("_")
    if len(cleaned) < EVENT_NAME_MIN:
        raise ItemRejected(f"event: {name!r} makes the Mailchimp event name {cleaned!r}, which "
                        f"must have {EVENT_NAME_MIN}-{EVENT_NAME_MAX} letters, digits, _ or -")
    return cleaned


def string_value(value: Any) -> str:
    """A merge field or event property value as Mailchimp takes it: text (objects as JSON with
    their keys in order, so the same object is always the same text)."""
    return stringify(value, sort_keys=True) or ""


def event_properties(properties: dict[str, Any]) -> dict[str, str]:
    """Mailchimp event properties are {str: str}: keys cleaned, values as text, nulls left out."""
    out: dict[str, str] = {}
    for key, value in properties.items():
        name = _NOT_KEY_CHARS.sub("_", str(key)).strip("_")
        if name and value is not None:
            out[name] = string_value(value)
    return out


def birthday(value: Any, source: str) -> str:
    """Mailchimp's "MM/DD" from a month and day ("7/4") or a date of birth in any form
    crossdock.dates reads ("1990-07-04", "1990-07-04T00:00:00+0200", "7/4/1990")."""
    text = str(value).strip()
    if match := _MONTH_DAY.match(text):
        month, day = int(match.group(1)), int(match.group(2))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            raise ValueRefused(f"traits.{source}: not a day of the year (MM/DD)")
    else:
        try:
            _, month, day = parse_date(text)
        except DateError as exc:
            raise ValueRefused(f"traits.{source}: a birthday is MM/DD or a date of birth "
                               f"({exc})") from None
    return f"{month:02d}/{day:02d}"


def address(traits: dict[str, Any], source: str) -> dict[str, str] | None:
    """The ADDRESS merge value: from Segment's address object in `traits[source]`
    ({street, city, state, postalCode, country}), else from flat traits (`traits[source]` as
    the street line when it is text, `city`, `state`, `zip` / `postalCode`, `country`). None
    when the person has no street line; ValueRefused when the parts Mailchimp requires are
    not all there."""
    value = traits.get(source)
    if isinstance(value, dict):
        parts: dict[str, Any] = value
    else:
        parts = {**traits, "addr1": value} if isinstance(value, str) else traits
    out: dict[str, str] = {}
    for key, names in _ADDRESS_KEYS.items():
        found = next((parts[n] for n in names
                      if parts.get(n) not in (None, "") and not isinstance(parts[n], dict)),
                     None)
        if found is not None:
            out[key] = str(found).strip()
    if "addr1" not in out and not isinstance(value, dict):
        return None  # a city or a country alone is no address
    missing = [k for k in ADDRESS_REQUIRED if k not in out]
    if missing:
        raise ValueRefused(f"traits.{source}: ADDRESS needs {', '.join(missing)} as well")
    return out


def subscription_status(value: Any, where: str) -> str:
    """A status Mailchimp takes (case and spaces forgiven), or ItemRejected naming `where`."""
    status = str(value).strip().lower()
    if status not in MEMBER_STATUSES:
        raise ItemRejected(f"{where}: a subscription status is one of "
                        f"{', '.join(sorted(MEMBER_STATUSES))}, got {str(value)[:40]!r}")
    return status


def opt_in(payload: dict[str, Any], trait: str) -> bool | None:
    """True / False when the message says whether the person opts in to email, else None."""
    value = (payload.get("traits") or {}).get(trait)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, bool):
        return value
    consent = (payload.get("context") or {}).get("consent")
    if isinstance(consent, dict):
        prefs = consent.get("categoryPreferences", consent)
        if isinstance(prefs, dict):
            for key in (trait, "email"):
                if isinstance(prefs.get(key), bool):
                    return bool(prefs[key])
    return None


@dataclass
class _Upsert:
    email: str
    merge_fields: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    #: the person's routed email consent (None: the payload carries none)
    email_consent: bool | None = None
    items: list[OutboxItem] = field(default_factory=list)


@dataclass
class _Tags:
    tags: dict[str, str] = field(default_factory=dict)
    items: list[OutboxItem] = field(default_factory=list)


class MailchimpDestination(Destination[MailchimpSettings, MailchimpOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, description="Upsert Mailchimp members; tags for audiences, custom events",
        docs_url="docs/destinations/mailchimp.md", message_types=frozenset({"identify", "track"}),
        batch_size=MAX_BATCH_MEMBERS, concurrency=MAX_CONNECTIONS, auth="api_key",
        max_response_bytes=MAX_RESPONSE_BYTES)

    def use_mapping(self, mapping: Mapping[str, Any]) -> None:
        super().use_mapping(mapping)
        #: where the member's email is read from (traits, then identities)
        self.email_paths = [f"{source}.{name}" for source in ("traits", "identities")
                            for name in self.opts.email]
        #: traits a message's explicit subscription status is read from
        self.status_sources: list[str] = list(self.opts.status)
        #: trait -> merge tag: settings.merge_fields when set, else options.merge_fields
        #: (a trait the operator mapped to null is left out)
        self.merge_map: dict[str, str] = (
            self.settings.merge_fields if self.settings.merge_fields is not None
            else {k: v for k, v in self.opts.merge_fields.items() if v is not None})

    # -- reading payloads ------------------------------------------------------------------

    def email(self, payload: dict[str, Any]) -> str:
        value = first_value(payload, *self.email_paths)
        if not isinstance(value, str):
            raise ItemRejected(f"no email: Mailchimp members are keyed by email; set traits or "
                               f"identities {' / '.join(self.opts.email)}")
        return value.strip()

    def merge_fields(self, traits: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The merge fields of the member's traits, and the tags left out (tag -> why)."""
        out: dict[str, Any] = {}
        refused: dict[str, str] = {}
        for trait, tag in self.merge_map.items():
            value = traits.get(trait)
            try:
                if tag == "ADDRESS":
                    built = address(traits, trait)
                    if built is not None:
                        out[tag] = built
                elif value is None or value == "":
                    continue
                elif tag in _BIRTHDAY_TAGS:
                    out[tag] = birthday(value, trait)
                else:
                    out[tag] = string_value(value)
            except ValueRefused as exc:
                refused[tag] = str(exc)
        return out, refused

    def status(self, payload: dict[str, Any]) -> str | None:
        """The status the message sets for sure, or None (then only status_if_new applies):
        the one it states (a `status` template, else `subscriptionStatus`), else the one its
        opt-in implies. A stated status Mailchimp does not know is ItemRejected: guessing
        could subscribe someone who asked to leave."""
        rendered = (payload.get("rendered") or {}).get("status")
        if rendered not in (None, ""):
            return subscription_status(rendered, "mapping.templates.status")
        traits = payload.get("traits") or {}
        for name in self.status_sources:
            if traits.get(name) not in (None, ""):
                return subscription_status(traits[name], f"traits.{name}")
        said = opt_in(payload, self.settings.opt_in_trait)
        if said is False:
            return "unsubscribed"
        if said is True and not self.settings.double_opt_in:
            return "subscribed"
        return None

    # -- requests --------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any], items: list[OutboxItem],
                 params: dict[str, str] | None = None) -> PlannedRequest:
        key = self.settings.api_key.get_secret_value().strip()
        auth = f"Bearer {key}" if self.settings.auth == "bearer" else basic_auth("crossdock", key)
        request = json_request(method, self.settings.api_root + path, body,
                               headers={"authorization": auth}, params=params)
        return PlannedRequest(request, items, rate_key=secret_rate_key(
            PLUGIN_NAME, self.settings.api_key.get_secret_value()))

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        unsent: list[Planned] = []  # Rejected items and FieldRefused values
        upserts: dict[str, _Upsert] = {}
        tags: dict[str, _Tags] = {}
        events: list[PlannedRequest] = []
        list_path = f"/lists/{self.settings.list_id}"
        for item in items:
            payload = item.payload
            try:
                member = subscriber_hash(self.email(payload))
                kind, event = payload.get("type"), payload.get("event")
                if kind == "identify":
                    status = self.status(payload)
                    fields, refused = self.merge_fields(payload.get("traits") or {})
                    unsent.extend(FieldRefused(item, tag, why) for tag, why in refused.items())
                    upsert = upserts.setdefault(member, _Upsert(self.email(payload)))
                    upsert.email = self.email(payload)
                    upsert.merge_fields.update(fields)
                    upsert.status = status or upsert.status
                    said = (payload.get("consent") or {}).get("email")
                    if isinstance(said, bool):
                        upsert.email_consent = said
                    upsert.items.append(item)
                elif kind == "track" and event in TAG_STATUS:
                    name = self.tag_name(payload)
                    change = tags.setdefault(member, _Tags())
                    change.tags.pop(name, None)  # the last change of a tag wins, in order
                    change.tags[name] = TAG_STATUS[str(event)]
                    change.items.append(item)
                elif kind == "track":
                    body = {"name": event_name(str(event or "")),
                            "properties": event_properties(payload.get("properties") or {})}
                    if payload.get("timestamp"):
                        body["occurred_at"] = payload["timestamp"]
                    events.append(self._request(
                        "POST", f"{list_path}/members/{member}/events", body, [item]))
                else:
                    raise ItemRejected(f"mailchimp takes identify and track messages, got {kind}")
            except ItemRejected as exc:
                unsent.append(Rejected(item, exc.reason))
        out = unsent + self._upserts(list_path, list(upserts.items()))
        out.extend(self._request("POST", f"{list_path}/members/{member}/tags",
                                 {"tags": [{"name": n, "status": s}
                                           for n, s in change.tags.items()]}, change.items)
                   for member, change in tags.items())
        out.extend(events)
        return out

    def tag_name(self, payload: dict[str, Any]) -> str:
        audience = (payload.get("properties") or {}).get("audience")
        if not isinstance(audience, str) or not audience.strip():
            raise ItemRejected(f"properties.audience: {payload.get('event')} needs the audience's "
                            "name")
        return self.settings.tag_prefix + audience.strip()

    def _upserts(self, list_path: str, upserts: list[tuple[str, _Upsert]]
                 ) -> list[Planned]:
        definite = [u for _, u in upserts if u.status is not None]
        batched = definite if len(definite) > 1 else []
        out: list[Planned] = []
        # Mailchimp's query flag, on the upserts (the only calls that carry merge fields).
        params = {"skip_merge_validation": "true"} if self.settings.skip_merge_validation else None
        for chunk in chunks(batched, MAX_BATCH_MEMBERS):
            members = [{"email_address": u.email, "status": u.status,
                        **({"merge_fields": u.merge_fields} if u.merge_fields else {})}
                       for u in chunk]
            out.append(self._request("POST", list_path,
                                     {"members": members, "update_existing": True},
                                     [i for u in chunk for i in u.items], params))
        new_status = "pending" if self.settings.double_opt_in else "subscribed"
        for member, upsert in upserts:
            if batched and upsert.status is not None:
                continue
            # Nothing stated: a new member's status is the person's email consent as the
            # profile store answers it (what rules.require_consent reads; the config's
            # default for a person who never said). Not granted: `transactional`, Mailchimp's
            # status for a contact who has not opted in to marketing email.
            if_new = upsert.status or (
                "transactional" if upsert.email_consent is False else new_status)
            body: dict[str, Any] = {"email_address": upsert.email, "status_if_new": if_new}
            if upsert.status is not None:
                body["status"] = upsert.status
            if upsert.merge_fields:
                body["merge_fields"] = upsert.merge_fields
            out.append(self._request("PUT", f"{list_path}/members/{member}", body,
                                     upsert.items, params))
        return out

    # -- responses -------------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | Sequence[Outcome]:
        if not 200 <= response.status_code < 300:
            return problem_outcome(response)
        is_batch = planned.request.method == "POST" and \
            planned.request.url.path.rstrip("/").endswith(f"/lists/{self.settings.list_id}")
        if not is_batch:
            return DELIVERED
        return self.batch_outcomes(planned, response)

    def batch_outcomes(self, planned: PlannedRequest, response: httpx.Response
                       ) -> list[Outcome]:
        """Per-item outcomes of a batch subscribe: an email in `errors` failed with Mailchimp's
        words; one in new_members / updated_members delivered; one in neither is retried."""
        data = response_json(response)
        if data is None:
            return [Retry(f"mailchimp batch subscribe: unreadable reply "
                          f"{short_body(response)}")] * len(planned.items)
        done = {str(m.get("email_address", "")).strip().lower()
                for key in ("new_members", "updated_members") for m in data.get(key) or []}
        errors = {str(e.get("email_address", "")).strip().lower(): e
                  for e in data.get("errors") or []}
        outcomes: list[Outcome] = []
        for item in planned.items:
            email = self.email(item.payload).lower()
            if email in errors:
                error = errors[email]
                outcomes.append(Failed(f"mailchimp batch subscribe: {error.get('error')} "
                                       f"({error.get('error_code', 'no code')})"))
            elif email in done:
                outcomes.append(DELIVERED)
            else:
                outcomes.append(Retry("mailchimp batch subscribe: member missing from the "
                                      "reply"))
        return outcomes


def problem_outcome(response: httpx.Response) -> Outcome:
    """A Mailchimp error (application/problem+json) as an outcome: 429 and 5xx retried, the
    rest permanent, with Mailchimp's title and detail as the reason."""
    status = response.status_code
    problem = response_json(response)
    if problem is None or "title" not in problem:
        return http_outcome(response, f"mailchimp HTTP {status}: {short_body(response)}")
    title = str(problem.get("title") or "").strip()
    detail = str(problem.get("detail") or "").strip()
    reason = f"mailchimp {status} {title}: {detail}" if detail else f"mailchimp {status} {title}"
    if status == 429 or status >= 500 or status == 408:
        return Retry(reason, parse_retry_after(response.headers.get("retry-after")))
    if title in PERMANENT_TITLES or status in (400, 401, 403, 404):
        return Failed(reason)
    return http_outcome(response, reason)
