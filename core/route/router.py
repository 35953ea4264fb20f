"""route(enriched, destination): the routed payload for one destination, or why not.

A destination's mapping and filter compile once (matchers, normalizers, templates) and are
reused for every message; route() is on the hot path of every accepted message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.config import ConfiguredDestination
from crossdock.models import EnrichedMessage
from crossdock.route.filtering import Matcher
from crossdock.route.mapping import AttributeShaper
from crossdock.route.mapping_spec import parse_mapping
from crossdock.route.normalize import KeyNormalizer
from crossdock.route.rules import Rules
from crossdock.route.templates import CompiledTemplate, compile_templates

_EVENT_TYPES = frozenset({"track", "page", "screen"})


@dataclass(frozen=True)
class Skip:
    """The message does not go to this destination, and why."""

    reason: str


class CompiledRoute:
    """Everything route() needs for one destination, built once."""

    def __init__(self, destination: ConfiguredDestination) -> None:
        spec = parse_mapping(destination.mapping)
        filt = destination.config.filter
        by_default = spec.forward_by_default
        types = set(destination.plugin.message_types)
        if spec.message_types is not None:
            types &= set(spec.message_types)
        if filt.message_types is not None:
            types &= set(filt.message_types)
        self.destination = destination
        self.message_types = frozenset(types)
        self.plugin_name = destination.plugin.plugin_name
        self.forward_by_default = by_default
        self.events = Matcher(filt.events, by_default)
        self.identities = Matcher(filt.identities, by_default)
        self.always_identities = tuple(spec.identities.always)
        self.rules = Rules.merge(spec.rules, destination.config.rules)
        self.event_names = spec.event_names
        normalizer = KeyNormalizer(spec.keys)
        string_length = spec.limits.string_length
        self.properties = AttributeShaper(
            Matcher(filt.event_attributes, by_default),
            normalizer if "properties" in spec.keys.apply_to else None,
            {}, spec.values.stringify, spec.limits.event_attributes, string_length)
        self.traits = AttributeShaper(
            Matcher(filt.user_attributes, by_default),
            normalizer if "traits" in spec.keys.apply_to else None,
            spec.reserved, spec.values.stringify, spec.limits.user_attributes, string_length)
        self.templates: list[CompiledTemplate] = compile_templates(
            spec.templates, spec.template_format)

    def route(self, enriched: EnrichedMessage) -> dict[str, Any] | Skip:
        message = enriched.message
        kind = message["type"]
        if kind not in self.message_types:
            return Skip(f"type: {kind} is not forwarded to {self.plugin_name}")
        event: str | None = None
        if kind in _EVENT_TYPES:
            event = message.get("event") if kind == "track" else (message.get("name") or kind)
            assert event is not None
            if enriched.system:
                # session_start / session_end are opt-in: only an allow list naming them.
                if not self.events.explicitly_allowed(event):
                    return Skip(f"filtered: system event {event!r} not enabled")
            elif not self.events(event):
                return Skip(f"filtered: event {event!r} not allowed")
        refusal = self.rules.refusal(enriched)
        if refusal is not None:
            return Skip(refusal)

        identities = {k: v for k, v in enriched.identities.items() if self.identities(k)}
        for name in self.always_identities:
            if name == "profileId":
                if enriched.profile_id:
                    identities["profileId"] = enriched.profile_id
            elif name in enriched.identities:
                identities[name] = enriched.identities[name]
        traits, dropped_traits = self.traits.shape(enriched.user_attributes)
        if kind in _EVENT_TYPES:
            properties, dropped_props = self.properties.shape(message.get("properties") or {})
        else:
            properties, dropped_props = {}, 0
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
            "event": self.event_names.get(event, event) if event is not None else None,
            "name": message.get("name"),
            "properties": properties,
            "traits": traits,
            "identities": identities,
            "context": message.get("context") or {},
            "rendered": {},
            "dropped": {"event_attributes": dropped_props, "user_attributes": dropped_traits},
        }
        if kind == "alias":
            payload["previousId"] = message.get("previousId")
        if self.templates:
            payload["rendered"] = {t.name: t.render(payload) for t in self.templates}
        return payload


_COMPILED: dict[int, tuple[ConfiguredDestination, CompiledRoute]] = {}


def compiled(destination: ConfiguredDestination) -> CompiledRoute:
    """The destination's compiled route (kept while the destination object lives)."""
    found = _COMPILED.get(id(destination))
    if found is None or found[0] is not destination:
        found = (destination, CompiledRoute(destination))
        _COMPILED[id(destination)] = found
    return found[1]


def route(enriched: EnrichedMessage, destination: ConfiguredDestination) -> dict[str, Any] | Skip:
    """The routed payload for `destination` (format: crossdock.route), or a Skip saying why
    the message does not go there. Raises MessageError when a template cannot render."""
    return compiled(destination).route(enriched)
