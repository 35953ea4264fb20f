"""The Facebook Custom Audience destination: audience membership changes -> user uploads.

The audience engine emits `track` events `audience_entered` / `audience_exited` (the contract
is on docs/destinations/facebook_audience.md). One `build_requests` call turns them into:

- one row per person: the configured schema fields, each normalized and SHA-256 hashed by
  Meta's rules (normalize.py); a value Meta could not match is sent empty and reported
  (`FieldRefused`); a person changing twice in one batch counts once, with the last change, and
  the superseded items share that request's fate;
- `POST /{version}/{audience_id}/users` for the adds and `DELETE` with the same body shape for
  the removes, at most 10,000 rows a request; each method's requests form one upload session
  (`batch_seq` 1..n, `last_batch_flag` on the last), whose id is derived from the items it
  carries, so a retried batch re-uses its session id;
- with an app secret, the time-bound `appsecret_proof` (HMAC-SHA256 of "token|time") and its
  `appsecret_time`: the attempt's time (`OutboxItem.attempted_at`), which Meta accepts for 5
  minutes, so a retry hours later signs afresh while the plugin stays pure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from crossdock.dates import DateError, parse_date
from crossdock.destination import (
    DELIVERED,
    RETRYABLE_STATUS,
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
    chunks,
    first_value,
    http_outcome,
    json_request,
    parse_retry_after,
    response_json,
    short_body,
)
from crossdock.plugins.facebook_audience import normalize
from crossdock.plugins.facebook_audience.const import (
    AUDIENCE_ENTERED,
    AUDIENCE_EXITED,
    MAX_USERS_PER_REQUEST,
    PERMANENT_CODES,
    PLUGIN_NAME,
    THROTTLE_CODES,
    TOKEN_INVALID_CODE,
    TRANSIENT_CODES,
)
from crossdock.plugins.facebook_audience.settings import (
    FacebookAudienceOptions,
    FacebookAudienceSettings,
)

METHODS = {AUDIENCE_ENTERED: "POST", AUDIENCE_EXITED: "DELETE"}
_DOB_PARTS = {"DOBY": 0, "DOBM": 1, "DOBD": 2}


def appsecret_proof(app_secret: str, access_token: str, appsecret_time: int | None = None
                    ) -> str:
    """Lower-hex HMAC-SHA256 keyed by the app secret of the access token, or, time-bound, of
    "token|time" (Meta's Login Security guide: "hash_hmac('sha256', $access_token.'|'.time(),
    $app_secret)", sent with appsecret_time)."""
    message = access_token if appsecret_time is None else f"{access_token}|{appsecret_time}"
    return hmac.new(app_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def membership_method(payload: dict[str, Any]) -> str:
    """POST for audience_entered, DELETE for audience_exited; anything else is rejected."""
    event = payload.get("event")
    if payload.get("type") != "track" or event not in METHODS:
        raise ItemRejected(
            "facebook_audience takes only track events audience_entered / audience_exited "
            f"(docs/destinations/facebook_audience.md), got {payload.get('type')} {event!r}"
        )
    return METHODS[event]


def session_id(audience_id: str, method: str, items: Sequence[OutboxItem]) -> int:
    """A positive 63-bit id, the same whenever the same items are uploaded again."""
    ids = ",".join(str(item.id) for item in items)
    digest = hashlib.sha256(f"{audience_id}:{method}:{ids}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1 or 1


def _paths(names: list[str]) -> list[str]:
    """Where each of `names` is read from, in order: the traits, then the identities, and
    the message's own userId / anonymousId."""
    return [path for name in names for path in (
        f"traits.{name}", f"identities.{name}",
        *((name,) if name in ("userId", "anonymousId") else ()))]


@dataclass
class _Person:
    row: list[str]
    method: str
    items: list[OutboxItem] = field(default_factory=list)


class FacebookAudienceDestination(Destination[FacebookAudienceSettings,
                                                  FacebookAudienceOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, description="Add and remove people in a Facebook Custom Audience",
        docs_url="docs/destinations/facebook_audience.md", message_types=frozenset({"track"}),
        # One batch at a time keeps an exit from overtaking the entry it follows.
        batch_size=MAX_USERS_PER_REQUEST, concurrency=1, auth="bearer")

    def use_mapping(self, mapping: Mapping[str, Any]) -> None:
        super().use_mapping(mapping)
        #: schema field -> where its value is read from (options.fields)
        self.sources: dict[str, list[str]] = {
            schema_field: _paths(names) for schema_field, names in self.opts.fields.items()}
        self.birthday_sources: list[str] = _paths(self.opts.birthday)

    # -- rows ------------------------------------------------------------------------------

    def _raw(self, payload: dict[str, Any], schema_field: str) -> Any:
        rendered = payload.get("rendered") or {}
        if rendered.get(schema_field) not in (None, ""):
            return rendered[schema_field]
        value = first_value(payload, *self.sources.get(schema_field, []))
        if value is None and schema_field in _DOB_PARTS:
            birthday = first_value(payload, *self.birthday_sources)
            if birthday is not None:
                try:
                    value = parse_date(str(birthday), self.settings.date_order)[
                        _DOB_PARTS[schema_field]]
                except DateError as exc:
                    raise ValueRefused(f"date of birth: {exc}") from None
        return value

    def _context(self, payload: dict[str, Any]) -> normalize.Context:
        try:
            country = normalize.normalize("COUNTRY", self._raw(payload, "COUNTRY"))
        except ValueRefused:
            country = ""  # reported with the COUNTRY field when the schema has it
        return normalize.Context(country, self.settings.default_phone_region,
                                 self.settings.date_order)

    def row(self, payload: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The person's customer-file row in the configured schema's order, and the fields
        left empty because their value could not be used (field -> why)."""
        schema = self.settings.schema_fields
        context = self._context(payload)
        row: list[str] = []
        refused: dict[str, str] = {}
        for schema_field in schema:
            try:
                row.append(normalize.prepare(schema_field, self._raw(payload, schema_field),
                                             context))
            except ValueRefused as exc:
                row.append("")
                refused[schema_field] = exc.reason
        if not any(row):
            why = "; ".join(f"{f}: {reason}" for f, reason in refused.items())
            raise ItemRejected(
                f"no usable value for any schema field ({', '.join(schema)}): set traits or "
                "identities such as email / phone, or a template per field"
                + (f" ({why})" if why else "")
            )
        return row, refused

    # -- requests --------------------------------------------------------------------------

    def url(self) -> str:
        base = str(self.settings.graph_url).rstrip("/")
        return f"{base}/{self.settings.api_version}/{self.settings.audience_id}/users"

    def auth_params(self, attempted_at: float) -> dict[str, str]:
        """access_token, and with an app secret the proof bound to the attempt's time."""
        token = self.settings.access_token.get_secret_value()
        params = {"access_token": token}
        if self.settings.app_secret is not None:
            at = int(attempted_at)
            params["appsecret_proof"] = appsecret_proof(
                self.settings.app_secret.get_secret_value(), token, at)
            params["appsecret_time"] = str(at)
        return params

    def build_requests(self, items: Sequence[OutboxItem], max_rows: int = MAX_USERS_PER_REQUEST
                       ) -> list[Planned]:
        out: list[Planned] = []
        people: dict[str, _Person] = {}
        for item in items:
            try:
                method = membership_method(item.payload)
                row, refused = self.row(item.payload)
            except ItemRejected as exc:
                out.append(Rejected(item, exc.reason))
                continue
            out.extend(FieldRefused(item, f, reason) for f, reason in refused.items())
            key = self._person_key(item.payload, row)
            earlier = people.pop(key, None)
            # Re-inserted so the person sits where their last change is; the last change wins.
            people[key] = _Person(row, method, (earlier.items if earlier else []) + [item])
        for method in ("POST", "DELETE"):
            chosen = [p for p in people.values() if p.method == method]
            out.extend(self._session(method, chosen, max_rows))
        return out

    @staticmethod
    def _person_key(payload: dict[str, Any], row: list[str]) -> str:
        for name in ("profileId", "userId", "anonymousId"):
            if payload.get(name):
                return f"{name}:{payload[name]}"
        return "row:" + "\x1f".join(row)

    def _session(self, method: str, people: list[_Person], max_rows: int
                 ) -> list[PlannedRequest]:
        if not people:
            return []
        carried = [item for p in people for item in p.items]
        sid = session_id(self.settings.audience_id, method, carried)
        batches = list(chunks(people, max_rows))
        url = self.url()
        # One batch is one attempt: its items share the time the engine stamped on them.
        params = self.auth_params(max(item.attempted_at for item in carried))
        planned: list[PlannedRequest] = []
        for seq, batch in enumerate(batches, start=1):
            body = {
                "session": {"session_id": sid, "batch_seq": seq,
                            "last_batch_flag": seq == len(batches),
                            "estimated_num_total": len(people)},
                "payload": {"schema": list(self.settings.schema_fields),
                            "data": [p.row for p in batch]},
            }
            planned.append(PlannedRequest(json_request(method, url, body, params=params),
                                          [i for p in batch for i in p.items],
                                          rate_key=f"{PLUGIN_NAME}:{self.settings.audience_id}"))
        return planned

    # -- responses -------------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        return classify_response(response)


def graph_error(response: httpx.Response) -> dict[str, Any] | None:
    """The `error` object of a Graph API error body, or None when the body is not one."""
    data = response_json(response)
    error = data.get("error") if data is not None else None
    return error if isinstance(error, dict) and isinstance(error.get("code"), int) else None


def classify_response(response: httpx.Response) -> Outcome:
    """Graph's answer as an outcome: throttles and transient codes retried, token problems
    failed with a reason of their own, other codes by Meta's list, then by HTTP status."""
    status = response.status_code
    if 200 <= status < 300:
        return DELIVERED
    error = graph_error(response)
    if error is None:
        return http_outcome(response, f"facebook HTTP {status}: {short_body(response)}")
    code: int = error["code"]
    sub = error.get("error_subcode")
    label = f"{code}/{sub}" if sub else str(code)
    message = str(error.get("message") or "").strip()
    trace = f", fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else ""
    after = parse_retry_after(response.headers.get("retry-after"))
    if code == TOKEN_INVALID_CODE:
        return Failed(f"access token invalid ({code}): {message}{trace}")
    if code in THROTTLE_CODES:
        return Retry(f"facebook throttled ({label}): {message}{trace}", after)
    reason = f"facebook error {label} (HTTP {status}): {message}{trace}"
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        return Retry(reason, after)
    if code in PERMANENT_CODES:
        return Failed(reason)
    if status >= 500 or status in RETRYABLE_STATUS:
        return Retry(reason, after)
    return Failed(reason)
