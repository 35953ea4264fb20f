"""The SessionM destination: routed messages as SessionM app API requests.

One request per message, because every request carries a whole message's fate:

    identify        PUT  {host}/priv/v1/apps/{api_key}/external/users/{profileId}
    track, screen   POST {host}/priv/v1/apps/{api_key}/external/users/{profileId}/events

Both bodies carry a `user` block (standard fields, custom attributes as `user_profile`,
enabled identities as `identifiers`), so the user is created or updated by their Crossdock id
before the event is stored. The events path is Crossdock's own design in SessionM's style:
SessionM does not publish its custom-event API (docs/destinations/sessionm.md).

The filtering, forwarding rules, key normalization, limits and reserved renames happen in the
route step (mappings/sessionm.yaml); this module applies the operator's event-name mappings
and makes sure every value on the wire is a string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from crossdock.destination import (
    DELIVERED,
    Destination,
    DestinationContext,
    Failed,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    PlannedRequest,
    Retry,
    basic_auth,
    http_outcome,
    json_request,
    parse_retry_after,
    response_json,
    short_body,
    stringify_values,
)
from crossdock.plugins.sessionm.const import (
    API_PREFIX,
    EVENT_TYPE_CUSTOM,
    EVENT_TYPE_SCREEN_VIEW,
    EXTERNAL_ID_TYPE,
    MAX_EVENT_ATTRIBUTES,
    MAX_USER_ATTRIBUTES,
    PLUGIN_NAME,
    PROFILE_IDENTITY,
    RETRYABLE_CODES,
    STANDARD_USER_FIELDS,
    USER_AGENT,
)
from crossdock.plugins.sessionm.settings import SessionMSettings

_EVENT_TYPES = {"track": EVENT_TYPE_CUSTOM, "screen": EVENT_TYPE_SCREEN_VIEW}
_FILTER_CATEGORIES = ("events", "event_attributes", "user_attributes", "identities")


def user_block(payload: dict[str, Any]) -> dict[str, Any]:
    """The `user` object of a request: who the person is and what SessionM should know."""
    profile_id = str(payload["profileId"])
    traits = stringify_values(payload.get("traits") or {})
    user: dict[str, Any] = {"external_id": profile_id, "external_id_type": EXTERNAL_ID_TYPE}
    for name in sorted(STANDARD_USER_FIELDS & traits.keys()):
        user[name] = traits[name]
    custom = {k: v for k, v in sorted(traits.items()) if k not in STANDARD_USER_FIELDS}
    if custom:
        user["user_profile"] = custom
    identities = stringify_values(payload.get("identities") or {})
    identifiers = [
        {"external_id_type": kind, "external_id": value}
        for kind, value in sorted(identities.items()) if kind != PROFILE_IDENTITY
    ]
    if identifiers:
        user["identifiers"] = identifiers
    return user


class SessionMDestination(Destination[SessionMSettings]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/sessionm.md",
        description="SessionM: enabled custom events, screen views, user attributes and "
                    "identities",
        message_types=frozenset({"track", "screen", "identify"}), auth="basic")

    # -- validate ----------------------------------------------------------------------

    def config_warnings(self, context: DestinationContext) -> list[str]:
        warnings: list[str] = []
        mapping = context.mapping
        if not mapping.get("forward_by_default", True) and not any(
            context.allowed[category] for category in _FILTER_CATEGORIES
        ):
            warnings.append(
                "filter enables nothing, so nothing is sent: SessionM forwards only what "
                "filter.events, filter.event_attributes, filter.user_attributes and "
                "filter.identities allow"
            )
        limits = mapping.get("limits") or {}
        event_limit = limits.get("event_attributes")
        if event_limit is None or event_limit > MAX_EVENT_ATTRIBUTES:
            warnings.append(
                f"mapping.limits.event_attributes is {event_limit}: SessionM refuses events "
                f"with more than {MAX_EVENT_ATTRIBUTES} attributes"
            )
        user_limit = limits.get("user_attributes")
        if user_limit is None or user_limit > MAX_USER_ATTRIBUTES:
            warnings.append(
                f"mapping.limits.user_attributes is {user_limit}: SessionM refuses more than "
                f"{MAX_USER_ATTRIBUTES} user attributes"
            )
        renamed = mapping.get("event_names") or {}
        for name in sorted(self.settings.event_names):
            if name in renamed and name not in renamed.values():
                warnings.append(
                    f"settings.event_names.{name} never applies: mapping.event_names renames "
                    f"{name!r} to {renamed[name]!r} first"
                )
        return warnings

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> PlannedRequest:
        """The one request that delivers a routed payload."""
        payload = item.payload
        kind = payload.get("type")
        profile_id = payload.get("profileId")
        if not profile_id:
            raise ItemRejected("profileId: missing; SessionM users are keyed by Crossdock's "
                               "person id")
        user_path = f"/external/users/{quote(str(profile_id), safe='')}"
        if kind == "identify":
            return self._request("PUT", user_path, {"user": user_block(payload)}, item)
        if kind in _EVENT_TYPES:
            return self._request("POST", user_path + "/events", {
                "user": user_block(payload),
                "event": self.event_body(payload),
            }, item)
        raise ItemRejected(f"type: {kind!r} is not forwarded to SessionM "
                           "(only track, screen and identify)")

    def event_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The `event` object: name after the event-name mappings, attributes as strings."""
        routed = payload.get("event") or ""
        name = self.settings.event_names.get(routed, routed)
        if not name:
            raise ItemRejected("event: missing; SessionM needs an event name")
        event: dict[str, Any] = {
            "name": name,
            "type": _EVENT_TYPES[payload["type"]],
            "attributes": stringify_values(payload.get("properties") or {}),
            "message_id": payload.get("messageId"),
        }
        if payload.get("timestamp"):
            event["occurred_at"] = payload["timestamp"]
        return event

    def _request(self, method: str, path: str, body: dict[str, Any], item: OutboxItem
                 ) -> PlannedRequest:
        settings = self.settings
        prefix = API_PREFIX.format(api_key=settings.api_key)
        return PlannedRequest(json_request(
            method,
            settings.base_url + prefix + path,
            body,
            headers={
                "authorization": basic_auth(settings.api_key,
                                            settings.api_secret.get_secret_value()),
                "accept": "application/json",
                "user-agent": USER_AGENT,
            },
        ), [item])

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        return classify_response(response)


def classify_response(response: httpx.Response) -> Outcome:
    """SessionM's replies: `{"status": "ok"}` delivered; `{"status": "error"}` permanent even
    with HTTP 200, except INTERNAL_SERVER_ERROR; 5xx retried; 401/403 bad credentials."""
    status = response.status_code
    body = response_json(response)
    error = _error(body)
    if status in (401, 403):
        why = error.text if error else short_body(response)
        return Failed(f"bad credentials (HTTP {status}): {why}")
    if 200 <= status < 300:
        if body is not None and body.get("status") == "ok":
            return DELIVERED
        if error is not None:
            if error.code in RETRYABLE_CODES:
                return Retry(f"SessionM {error.text}",
                             parse_retry_after(response.headers.get("retry-after")))
            return Failed(f"SessionM {error.text}")
        # A reply we cannot read says nothing about the request; trying again is safe.
        return Retry(f"HTTP {status} without a SessionM status: {short_body(response)}")
    reason = f"HTTP {status}: " + (f"SessionM {error.text}" if error else short_body(response))
    return http_outcome(response, reason)


@dataclass(frozen=True, slots=True)
class SessionMError:
    """The `errors` of a `{"status": "error"}` reply."""

    code: str
    message: str | None = None

    @property
    def text(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def _error(body: dict[str, Any] | None) -> SessionMError | None:
    if body is None or body.get("status") != "error":
        return None
    errors = body.get("errors")
    if isinstance(errors, dict):
        message = errors.get("message")
        return SessionMError(str(errors.get("code") or "UNKNOWN"),
                             None if message is None else str(message))
    return SessionMError("UNKNOWN", json.dumps(errors, default=str)[:200])
