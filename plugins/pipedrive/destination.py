"""The Pipedrive destination: persons upserted, and events as notes or activities on them,
through Pipedrive's API (persons, search and activities v2; notes v1).

Pipedrive has no upsert: a person is searched first, and the answer decides the next request.
Each message is one `FollowUp` flow the engine runs as one attempt:

    identify   GET /api/v2/persons/search  -> found:     PATCH /api/v2/persons/{id}
                                           -> not found: POST  /api/v2/persons
    track      GET /api/v2/persons/search  -> found:     POST /api/v1/notes (or
                                                         POST /api/v2/activities)
                                           -> not found: POST /api/v2/persons, then the note

A failure at any step (a timeout, 429, 5xx) retries the message from its search, which is safe
to repeat. The person is searched by the first identifier of `options.match` the message has:
the userId in a custom field (`options.user_id_field`), the email, the phone. Key and value
rules (which trait goes to which custom field and as what type, the note's and the activity's
text) are in mappings/pipedrive.yaml.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

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
    RefreshToken,
    Retry,
    first_value,
    http_outcome,
    json_content,
    parse_retry_after,
    response_json,
    secret_rate_key,
    short_body,
    stringify,
)
from crossdock.phones import PhoneError
from crossdock.plugins.pipedrive.const import (
    ACTIVITIES_PATH,
    API_DOMAIN_FIELD,
    LOOKUP_LIMIT,
    NOTES_PATH,
    PERSON_PATH,
    PERSONS_PATH,
    PLUGIN_NAME,
    SEARCH_BURST,
    SEARCH_PATH,
    TOKEN_HEADER,
)
from crossdock.plugins.pipedrive.settings import (
    CustomField,
    PipedriveOptions,
    PipedriveSettings,
)

# The steps of the flows; `classify` reads an answer by the step that asked.
SEARCH, CREATE, UPDATE = "search", "create", "update"
CREATE_FOR_EVENT, NOTE, ACTIVITY = "create-for-event", "note", "activity"
#: a retried event's read of the person's notes or activities before adding its own
FIND_NOTE, FIND_ACTIVITY = "find-note", "find-activity"
_FIND = {NOTE: FIND_NOTE, ACTIVITY: FIND_ACTIVITY}
_TAG = re.compile(r"<[^>]*>")
#: the search field each identifier is found in
_SEARCH_FIELD = {"user_id": "custom_fields", "email": "email", "phone": "phone"}
#: a 429 without Retry-After or x-ratelimit-reset: the burst window is 2 seconds
_BURST_WINDOW = 2.0


class PipedriveDestination(Destination[PipedriveSettings, PipedriveOptions]):
    # Searches share the Search API's limit (10 per 2 s per token), writes another key at
    # the same rate.
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/pipedrive.md",
        description="Pipedrive: persons upserted (search, then create or update), events as "
                    "notes or activities",
        message_types=frozenset({"track", "identify"}), rate_limit=SEARCH_BURST / 2,
        auth="api_key", other_auth=frozenset({"oauth2"}))

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> list[Planned]:
        """The flow's search, after a FieldRefused for each value left out; ItemRejected
        when the person cannot be searched for."""
        refused: list[tuple[str, str]] = []
        field, term = self.identifier(item.payload, refused)
        if item.payload.get("type") == "track" and not item.payload.get("event"):
            raise ItemRejected("event: missing; a note or activity needs an event name")
        self.custom_fields(item.payload, refused)
        search = self.request("GET", SEARCH_PATH, params={
            "term": term, "fields": field, "exact_match": "true"})
        return [*(FieldRefused(item, name, why) for name, why in refused),
                PlannedRequest(search, [item], self.rate_key(SEARCH), SEARCH)]

    def identifier(self, payload: dict[str, Any], refused: list[tuple[str, str]]
                   ) -> tuple[str, str]:
        """(search field, term) of the first identifier of options.match the message has."""
        for kind in self.opts.match:
            term = self.value_of(kind, payload, refused)
            if term is not None:
                return _SEARCH_FIELD[kind], term
        wanted = ", ".join("userId" if k == "user_id" else k for k in self.opts.match)
        unusable = "".join(f"; {name} {why}" for name, why in refused)
        raise ItemRejected(f"no {wanted} to find a Pipedrive person by (options.match{unusable})")

    def value_of(self, kind: str, payload: dict[str, Any],
                 refused: list[tuple[str, str]] | None = None) -> str | None:
        if kind == "user_id":
            user_id = payload.get("userId")
            return str(user_id) if user_id and self.opts.user_id_field else None
        if kind == "email":
            return self.opts.email_of(payload)
        try:
            return self.opts.phone_of(payload)
        except PhoneError as exc:
            if refused is not None:
                refused.append(("phone", f"left out: {exc}"))
            return None

    # -- bodies ------------------------------------------------------------------------

    def name(self, payload: dict[str, Any]) -> str | None:
        """The person's name as the message gives it: the full name, else first and last."""
        full = first_value(payload, *self.opts.name)
        if full is not None:
            return str(full).strip()
        parts = [first_value(payload, *self.opts.first_name),
                 first_value(payload, *self.opts.last_name)]
        joined = " ".join(str(p).strip() for p in parts if p is not None)
        return joined or None

    def create_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        email, phone = self.value_of("email", payload), self.value_of("phone", payload)
        # Pipedrive needs a name: the person's, else the identifier they were found by.
        name = self.name(payload) or email or phone or str(payload.get("userId"))
        body: dict[str, Any] = {"name": name}
        if email:
            body["emails"] = [{"value": email, "primary": True, "label": "work"}]
        if phone:
            body["phones"] = [{"value": phone, "primary": True, "label": "mobile"}]
        fields = self.custom_fields(payload, [])
        if fields:
            body["custom_fields"] = fields
        if self.settings.owner_id is not None:
            body["owner_id"] = self.settings.owner_id
        if self.settings.visible_to is not None:
            body["visible_to"] = self.settings.visible_to
        if self.settings.marketing_status:
            body["marketing_status"] = "subscribed" if self.email_granted(payload) else (
                "no_consent")
        return body

    def update_body(self, payload: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
        """What changes on a person the search found. Emails and phones are added only to a
        person who has none: an update replaces the whole list, and the search answer shows
        the numbers without their labels, so rewriting it would lose them."""
        body: dict[str, Any] = {}
        name = self.name(payload)
        if name and name != found.get("name"):
            body["name"] = name
        email, phone = self.value_of("email", payload), self.value_of("phone", payload)
        if email and not found.get("emails"):
            body["emails"] = [{"value": email, "primary": True, "label": "work"}]
        if phone and not found.get("phones"):
            body["phones"] = [{"value": phone, "primary": True, "label": "mobile"}]
        fields = self.custom_fields(payload, [])
        if fields:
            body["custom_fields"] = fields
        if self.settings.marketing_status:
            body["marketing_status"] = "subscribed" if self.email_granted(payload) else (
                "unsubscribed")
        return body

    def email_granted(self, payload: dict[str, Any]) -> bool:
        return (payload.get("consent") or {}).get("email") is True

    def custom_fields(self, payload: dict[str, Any], refused: list[tuple[str, str]]
                      ) -> dict[str, Any]:
        """The mapped traits as custom field values of their types; a value that is not of
        its field's type is left out, with the reason in `refused`."""
        traits = payload.get("traits") or {}
        out: dict[str, Any] = {}
        for trait in self.opts.custom_fields:
            field = self.opts.field(trait)
            value = traits.get(trait)
            if field is None or value is None:
                continue
            try:
                out[field.key] = _typed(field, value)
            except ValueError as exc:
                refused.append((f"traits.{trait}", f"left out: {exc}"))
        if self.opts.user_id_field and payload.get("userId"):
            out[self.opts.user_id_field] = str(payload["userId"])
        return out

    def event_body(self, payload: dict[str, Any], person: int) -> tuple[str, dict[str, Any]]:
        """What a track event becomes on person `person`: its step (a note or an activity)
        and its body."""
        event = str(payload.get("event"))
        rendered = payload.get("rendered") or {}
        note = rendered.get("note") or _default_note(event, payload.get("properties") or {})
        when = _moment(payload.get("timestamp"))
        kind = self.opts.activities.get(event)
        if kind is None and self.opts.events == "activity":
            kind = self.opts.activity_type
        if kind is None:
            body: dict[str, Any] = {"content": note, "person_id": person}
            if when is not None:
                body["add_time"] = when.strftime("%Y-%m-%d %H:%M:%S")
            return NOTE, body
        activity: dict[str, Any] = {
            "subject": str(rendered.get("activity_subject") or event)[:255], "type": kind,
            "person_id": person, "done": True, "note": note}
        if when is not None:
            activity["due_date"] = when.strftime("%Y-%m-%d")
            activity["due_time"] = when.strftime("%H:%M")
        if self.settings.owner_id is not None:
            activity["owner_id"] = self.settings.owner_id
        return ACTIVITY, activity

    def event_request(self, payload: dict[str, Any], person: int) -> tuple[httpx.Request, str]:
        """The note or activity a track event becomes on person `person`, and its step."""
        step, body = self.event_body(payload, person)
        return self.request("POST", NOTES_PATH if step == NOTE else ACTIVITIES_PATH,
                            body), step

    def find_request(self, payload: dict[str, Any], person: int) -> tuple[httpx.Request, str]:
        """The read of person `person`'s newest notes (or activities, as the event becomes
        one), newest first, and its step."""
        step, _ = self.event_body(payload, person)
        if step == NOTE:
            params = {"person_id": str(person), "sort": "add_time DESC",
                      "limit": str(LOOKUP_LIMIT)}
            when = _moment(payload.get("timestamp"))
            if when is not None:
                # The note carries the event's time: only that day's notes can be it.
                params["start_date"] = params["end_date"] = when.strftime("%Y-%m-%d")
            return self.request("GET", NOTES_PATH, params=params), FIND_NOTE
        return self.request("GET", ACTIVITIES_PATH, params={
            "person_id": str(person), "sort_by": "add_time", "sort_direction": "desc",
            "limit": str(LOOKUP_LIMIT)}), FIND_ACTIVITY

    def after_find(self, planned: PlannedRequest, payload: dict[str, Any],
                   body: dict[str, Any], response: httpx.Response) -> Outcome | FollowUp:
        """The read's answer: delivered when it holds this event's note or activity (an
        earlier attempt added it), else add it now."""
        listed = body.get("data")
        if listed is None and planned.step == FIND_NOTE:
            listed = []  # v1 answers no notes as null
        if not isinstance(listed, list):
            return Retry(f"HTTP 200 without Pipedrive's list: {short_body(response)}")
        person = int(planned.request.url.params["person_id"])
        step, wanted = self.event_body(payload, person)
        if any(_same_record(found, wanted, step) for found in listed):
            return DELIVERED
        return self.follow(*self.event_request(payload, person))

    def token_grant(self) -> RefreshToken | None:
        s = self.settings
        if s.auth != "oauth":
            return None
        assert s.refresh_token is not None and s.client_id is not None  # the settings' rule
        # Pipedrive's token endpoint takes the app in a Basic header and answers the
        # company's API host (api_domain), onto which the relative request URLs are joined.
        return RefreshToken(token_url=str(s.token_url), refresh_token=s.refresh_token,
                            client_id=s.client_id, client_secret=s.client_secret,
                            client_auth="basic", api_base_field=API_DOMAIN_FIELD)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                params: dict[str, str] | None = None) -> httpx.Request:
        headers = {"accept": "application/json"}
        if self.settings.api_token is not None:
            headers[TOKEN_HEADER] = self.settings.api_token.get_secret_value()
        if body is None:
            return httpx.Request(method, self.settings.root + path, params=params,
                                 headers=headers)
        return httpx.Request(method, self.settings.root + path, content=json_content(body),
                             headers={**headers, "content-type": "application/json"})

    def rate_key(self, step: str) -> str:
        # The Search API has a limit of its own; every other request shares the token's.
        prefix = "pipedrive:search" if step == SEARCH else "pipedrive"
        credential = self.settings.api_token or self.settings.refresh_token
        assert credential is not None  # the settings' rule: one or the other
        return secret_rate_key(prefix, credential.get_secret_value())

    def follow(self, request: httpx.Request, step: str) -> FollowUp:
        return FollowUp(request, step, self.rate_key(step))

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | FollowUp:
        status = response.status_code
        if status in (401, 403):
            return Failed(f"bad credentials (HTTP {status}): {_error(response)}")
        if status == 429:
            after = parse_retry_after(response.headers.get("retry-after"))
            if after is None:
                after = parse_retry_after(response.headers.get("x-ratelimit-reset"))
            return Retry(f"HTTP 429: {_error(response)}",
                         _BURST_WINDOW if after is None else after)
        (item,) = planned.items
        payload = item.payload
        body = response_json(response)
        if planned.step == SEARCH and status == 200 and body is not None:
            found = _first_person(body)
            wait = self.opts.search_again_after
            if found is None and wait and item.attempts == 1:
                # A person written seconds ago may not be searchable yet: look once more
                # before creating a second one.
                return Retry(f"no Pipedrive person found; searching again in {wait:g}s "
                             "before creating one (options.search_again_after)", wait)
            if payload.get("type") == "identify":
                if found is None:
                    return self.follow(self.request("POST", PERSONS_PATH,
                                                    self.create_body(payload)), CREATE)
                changes = self.update_body(payload, found)
                if not changes:
                    return DELIVERED  # nothing the person does not have already
                return self.follow(self.request(
                    "PATCH", PERSON_PATH.format(id=found["id"]), changes), UPDATE)
            if found is not None:
                found_id = int(found["id"])
                if item.attempts > 1:
                    # An earlier attempt may have added the note and lost the answer:
                    # Pipedrive takes no idempotency key, so read the person's newest first.
                    return self.follow(*self.find_request(payload, found_id))
                return self.follow(*self.event_request(payload, found_id))
            if not self.opts.create_person_for_events:
                return Failed("no Pipedrive person to attach the event to "
                              "(options.create_person_for_events is off)")
            return self.follow(self.request("POST", PERSONS_PATH, self.create_body(payload)),
                               CREATE_FOR_EVENT)
        if planned.step in (FIND_NOTE, FIND_ACTIVITY) and status == 200 and body is not None \
                and body.get("success") is not False:
            return self.after_find(planned, payload, body, response)
        if planned.step == CREATE_FOR_EVENT and 200 <= status < 300 and body is not None:
            person = (body.get("data") or {}).get("id")
            if isinstance(person, int):
                return self.follow(*self.event_request(payload, person))
            if body.get("success") is not False:
                # Created, but the answer names no id to attach the event to: search again.
                return Retry("Pipedrive created the person but its answer has no id: "
                             f"{short_body(response)}")
        if planned.step == UPDATE and status == 404:
            # Deleted since the search found them (or the search index is behind): create.
            return self.follow(self.request("POST", PERSONS_PATH, self.create_body(payload)),
                               CREATE)
        if 200 <= status < 300 and body is not None and body.get("success") is False:
            return Failed(f"Pipedrive: {_error(response)}")
        if 200 <= status < 300 and body is None:
            # An answer that is not Pipedrive's envelope (a proxy's page) says nothing.
            return Retry(f"HTTP {status} without Pipedrive's answer: {short_body(response)}")
        return http_outcome(response, f"HTTP {status}: {_error(response)}")


def _typed(field: CustomField, value: Any) -> Any:
    """`value` as field's type wants it; ValueError naming the type otherwise."""
    if field.type == "text":
        return stringify(value)
    if field.type == "date":
        try:
            year, month, day = parse_date(str(value))
        except DateError as exc:
            raise ValueError(f"not a date ({exc}), for a date field") from None
        return f"{year:04d}-{month:02d}-{day:02d}"
    if field.type == "monetary":
        amount, currency = value, field.currency
        if isinstance(value, dict):
            amount = value.get("value", value.get("amount"))
            currency = value.get("currency") or currency
        if not currency:
            raise ValueError("a monetary field needs a currency (its `currency` option, or "
                             "{value, currency})")
        return {"value": _number(amount), "currency": str(currency).upper()}
    return _number(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError("not a number (true/false), for a number field")
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("not a number, for a number field") from None
    return int(number) if number.is_integer() else number


def _first_person(body: dict[str, Any]) -> dict[str, Any] | None:
    items = ((body.get("data") or {}).get("items")) or []
    for entry in items:
        person = entry.get("item") if isinstance(entry, dict) else None
        if isinstance(person, dict) and isinstance(person.get("id"), int):
            return person
    return None


def _plain(text: Any) -> str:
    """A note's text without its markup and with its spaces collapsed (Pipedrive cleans the
    HTML of the notes it stores)."""
    return " ".join(html.unescape(_TAG.sub(" ", str(text or ""))).split())


def _same_record(found: Any, wanted: dict[str, Any], step: str) -> bool:
    """Whether a listed note or activity is the one `wanted` describes: on the same person,
    at the same time, with the same text (a note) or subject and type (an activity)."""
    if not isinstance(found, dict) or found.get("person_id") != wanted["person_id"]:
        return False
    keys: tuple[str, ...] = ("add_time",)
    if step == NOTE:
        if _plain(found.get("content")) != _plain(wanted["content"]):
            return False
    else:
        keys = ("subject", "type", "due_date", "due_time")
    return all(found.get(k) == wanted[k] for k in keys if k in wanted)


def _moment(stamp: Any) -> datetime | None:
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed


def _default_note(event: str, properties: dict[str, Any]) -> str:
    # Used when an operator removed the `note` template: the event and its properties.
    lines = [f"<p><b>{html.escape(event)}</b></p>"]
    lines += [f"<p>{html.escape(k)}: {html.escape(stringify(v) or '')}</p>"
              for k, v in sorted(properties.items())]
    return "".join(lines)


def _error(response: httpx.Response) -> str:
    body = response_json(response)
    if body is not None and isinstance(body.get("error"), str):
        info = body.get("error_info")
        return body["error"] + (f" ({info})" if isinstance(info, str) and info else "")
    return short_body(response)

