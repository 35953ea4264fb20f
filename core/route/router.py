"""route(enriched, destination): the routed payload for one destination, or why not.

A destination's mapping and filter compile once (matchers, normalizers, templates) and are
reused for every message: route() runs for every accepted message and every destination.
The compiled route is kept on the destination object itself, so it lives exactly as long.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crossdock.config import ConfiguredDestination
from crossdock.models import EnrichedMessage, format_time
from crossdock.route.filtering import Matcher, with_stored_names
from crossdock.route.mapping import AttributeShaper
from crossdock.route.mapping_spec import parse_mapping
from crossdock.route.normalize import KeyNormalizer
from crossdock.route.rules import Rules
from crossdock.route.templates import compile_templates

_EVENT_TYPES = frozenset({"track", "page", "screen"})
#: message fields copied as received, only when the message has them (a message from
#: `crossdock send` without them routes to the same payload as before they existed)
_PASSED_WHEN_PRESENT = ("category", "sentAt", "receivedAt", "originalTimestamp")
_ATTR = "_crossdock_compiled_route"
_EMPTY: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Skip:
    """The message does not go to this destination, and why."""

    reason: str


class CompiledRoute:
    """Everything route() needs for one destination, built once."""

    def __init__(self, destination: ConfiguredDestination) -> None:
        spec = parse_mapping(destination.mapping)
        filt = destination.config.filter
        by_default = spec.forward_by_default
        supported = set(destination.plugin.message_types)
        if spec.message_types is not None:
            supported &= set(spec.message_types)
        self.destination = destination
        self.supported = frozenset(supported)
        self.allowed_types = (None if filt.message_types is None
                              else frozenset(filt.message_types))
        self.forward_by_default = by_default
        self.events = Matcher(filt.events, by_default)
        self.identities = Matcher(filt.identities, by_default)
        self.always_identities = tuple(spec.identities.always)
        self.rules = Rules.merge(spec.rules, destination.config.rules)
        self.event_names = spec.event_names
        self.consent = tuple(dict.fromkeys(spec.consent))
        normalizer = KeyNormalizer(spec.keys)
        keys_for, values_for = spec.keys.apply_to, spec.values.apply_to
        string_length = spec.limits.string_length
        props = Matcher(filt.event_attributes, by_default)
        self.properties = AttributeShaper(
            props, props.everything,
            normalizer if "properties" in keys_for else None, {},
            spec.values.stringify and "properties" in values_for,
            spec.limits.event_attributes, string_length)
        traits = Matcher(with_stored_names(filt.user_attributes), by_default)
        self.traits = AttributeShaper(
            traits, traits.everything,
            normalizer if "traits" in keys_for else None, spec.reserved,
            spec.values.stringify and "traits" in values_for,
            spec.limits.user_attributes, string_length)
        self.templates = compile_templates(spec.templates, spec.template_format)
        # Flags read on every message, so the common "nothing to do" costs one test each.
        self.has_templates = bool(self.templates)
        self.has_rules = bool(self.rules)
        self.all_events = self.events.everything
        #: what the route is made of: destinations with equal ones route every message to
        #: equal payloads (`same_routes`); None when that cannot be promised
        self.definition = None if self.has_templates else _definition(destination)

    def route(self, enriched: EnrichedMessage) -> dict[str, Any] | Skip:
        message = enriched.message
        kind = message["type"]
        if kind not in self.supported:
            return Skip(f"type: {kind} not supported")
        if self.allowed_types is not None and kind not in self.allowed_types:
            return Skip(f"filtered: type {kind!r} not allowed")
        event: str | None = None
        is_event = kind in _EVENT_TYPES
        if is_event:
            # An unnamed page or screen is filtered (and sent) under its type's name.
            event = message["event"] if kind == "track" else (message.get("name") or kind)
            if enriched.system:
                # session_start / session_end are opt-in: only an allow list naming them.
                if not self.events.explicitly_allowed(event):
                    return Skip(f"filtered: system event {event!r} not enabled")
            elif not self.all_events and not self.events(event):
                return Skip(f"filtered: event {event!r} not allowed")
            if self.event_names:
                event = self.event_names.get(event, event)
        if self.has_rules:
            refusal = self.rules.refusal(enriched)
            if refusal is not None:
                return Skip(refusal)

        identities = self._identities(enriched)
        traits, traits_dropped, traits_cut = self.traits.shape(enriched.user_attributes)
        properties, props_dropped, props_cut = self.properties.shape(
            (message.get("properties") or _EMPTY) if is_event else _EMPTY)
        if kind == "identify" and not self.forward_by_default and not traits and not any(
            k not in self.always_identities for k in identities
        ):
            return Skip("filtered: no user attribute or identity enabled")

        payload: dict[str, Any] = {
            "type": kind,
            "messageId": message["messageId"],
            "timestamp": message.get("timestamp"),
            "userId": message.get("userId"),
            "anonymousId": message.get("anonymousId"),
            "sessionId": message.get("sessionId"),
            "profileId": enriched.profile_id,
            "event": event,
            "name": message.get("name"),
            "properties": properties,
            "traits": traits,
            "identities": identities,
            "context": message.get("context") or {},
            "rendered": {},
            "dropped": {"event_attributes": props_dropped, "user_attributes": traits_dropped},
            "truncated": props_cut + traits_cut,
        }
        if kind == "alias":
            payload["previousId"] = message.get("previousId")
        elif kind == "group":
            # The group's traits describe the group, an event's attributes describe the
            # event: both go through the event-attribute filter, key rules and limits.
            group_traits, dropped, cut = self.properties.shape(message.get("traits") or _EMPTY)
            payload["groupId"] = message.get("groupId")
            payload["groupTraits"] = group_traits
            payload["dropped"]["event_attributes"] += dropped
            payload["truncated"] += cut
        for name in _PASSED_WHEN_PRESENT:
            if name in message:
                payload[name] = message[name]
        if enriched.session_started_at is not None:
            # Amplitude names a session by its start: only the profile store knows it.
            payload["sessionStart"] = format_time(
                datetime.fromtimestamp(enriched.session_started_at, UTC))
        if self.consent:
            granted = enriched.consent
            payload["consent"] = {purpose: purpose in granted for purpose in self.consent}
        if self.has_templates:
            payload["rendered"] = self.templates.render(payload)
        return payload

    def _identities(self, enriched: EnrichedMessage) -> dict[str, str]:
        allowed = self.identities
        found = enriched.identities
        identities = dict(found) if allowed.everything else {
            k: v for k, v in found.items() if allowed(k)}
        for name in self.always_identities:
            if name == "profileId":
                if enriched.profile_id:
                    identities["profileId"] = enriched.profile_id
            elif name in found:
                identities[name] = found[name]
        return identities


def _definition(destination: ConfiguredDestination) -> str | None:
    """Everything `CompiledRoute` is built from, as canonical JSON (None: a mapping that is
    not plain JSON, so no promise). Templates are left out by the caller: a plugin may give
    their environment functions whose output differs from one call to the next."""
    config = destination.config
    try:
        return json.dumps([sorted(destination.plugin.message_types), destination.mapping,
                           config.filter.model_dump(mode="json"),
                           config.rules.model_dump(mode="json")],
                          sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def same_routes(destinations: Sequence[ConfiguredDestination]) -> list[int]:
    """For each destination, the index of the first one whose route is built from the same
    definition (its own index when no earlier one's is): route() gives both equal payloads
    for every message, so the pipeline routes it once and the rows share the payload (and
    the outbox encodes it once). Several webhooks, or several accounts of one plugin with
    the default mapping, are such a fan-out."""
    firsts: dict[str, int] = {}
    out: list[int] = []
    for index, destination in enumerate(destinations):
        definition = compiled(destination).definition
        out.append(index if definition is None else firsts.setdefault(definition, index))
    return out


def compiled(destination: ConfiguredDestination) -> CompiledRoute:
    """The destination's compiled route, built on first use."""
    found: CompiledRoute | None = destination.__dict__.get(_ATTR)
    if found is None:
        found = CompiledRoute(destination)
        setattr(destination, _ATTR, found)
    return found


def route(enriched: EnrichedMessage, destination: ConfiguredDestination) -> dict[str, Any] | Skip:
    """The routed payload for `destination` (format: crossdock.route), or a Skip saying why
    the message does not go there. Raises MessageError when a template cannot render."""
    found: CompiledRoute | None = destination.__dict__.get(_ATTR)
    if found is None:
        found = compiled(destination)
    return found.route(enriched)
