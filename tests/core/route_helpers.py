"""Helpers for the route-step tests: a destination type whose shipped mapping the test chooses,
configured through the real parse_config, and enriched messages built the real way."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from crossdock.config import ConfiguredDestination, LoadedConfig
from crossdock.destination import ALL_MESSAGE_TYPES, Destination
from crossdock.loader import parse_config
from crossdock.models import EnrichedMessage, enrich_without_profile, parse_message
from crossdock.route.router import Skip, route


class ProbeSettings(BaseModel):
    pass


class Probe(Destination):
    """A destination type that only exists to be routed to."""

    plugin_name = "probe"
    settings_model = ProbeSettings
    shipped: ClassVar[dict[str, Any]] = {}

    @classmethod
    def default_mapping(cls) -> dict[str, Any]:
        return copy.deepcopy(cls.shipped)


def probe_type(shipped: dict[str, Any] | None = None,
               message_types: frozenset[str] = ALL_MESSAGE_TYPES) -> type[Destination]:
    return type("Probe", (Probe,), {"shipped": shipped or {}, "message_types": message_types})


def load(shipped: dict[str, Any] | None = None, *, filter: dict[str, Any] | None = None,
         rules: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None,
         message_types: frozenset[str] = ALL_MESSAGE_TYPES,
         base_dir: Path = Path(".")) -> LoadedConfig:
    """A config with one destination "d" of a Probe type shipping `shipped` as its mapping,
    with the operator's `filter`, `rules` and `mapping:` overrides."""
    raw = {"destinations": {"d": {"plugin": "probe", "filter": filter or {},
                                  "rules": rules or {}, "mapping": mapping or {}}}}
    return parse_config(raw, base_dir=base_dir, env={},
                        types={"probe": probe_type(shipped, message_types)})


def dest(shipped: dict[str, Any] | None = None, **kw: Any) -> ConfiguredDestination:
    return load(shipped, **kw).destinations[0]


def msg(type: str = "track", *, user_attributes: dict[str, Any] | None = None,
        identities: dict[str, str] | None = None, consent: set[str] | None = None,
        system: bool = False, profile_id: str | None = None, **fields: Any) -> EnrichedMessage:
    """A validated message enriched from itself, with the profile parts overridable."""
    raw: dict[str, Any] = {"type": type, "messageId": "m-1", "userId": "u-1",
                           "timestamp": "2024-05-01T12:00:00Z"}
    if type == "track":
        raw["event"] = "Order Completed"
    raw.update(fields)
    raw = {k: v for k, v in raw.items() if v is not None}
    enriched = enrich_without_profile(parse_message(raw).to_json())
    if user_attributes is not None:
        enriched.user_attributes = user_attributes
    if identities is not None:
        enriched.identities = identities
    if consent is not None:
        enriched.consent = consent
    if profile_id is not None:
        enriched.profile_id = profile_id
    enriched.system = system
    return enriched


def routed(enriched: EnrichedMessage, destination: ConfiguredDestination) -> dict[str, Any]:
    """The routed payload; fails the test with the reason when the message was skipped."""
    out = route(enriched, destination)
    assert not isinstance(out, Skip), out.reason
    return out


def skipped(enriched: EnrichedMessage, destination: ConfiguredDestination) -> str:
    """The Skip reason; fails the test when the message was routed."""
    out = route(enriched, destination)
    assert isinstance(out, Skip), f"routed: {out}"
    return out.reason


def passthrough_route(enriched: EnrichedMessage, destination: Any) -> dict[str, Any]:
    """A router that routes every message unchanged, for tests about the pipeline's
    transaction and bookkeeping rather than about routing."""
    return {"type": enriched.message["type"], "messageId": enriched.message["messageId"],
            "message": enriched.message}
