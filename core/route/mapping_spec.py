"""The shape of a mapping: mappings/<plugin>.yaml deep-merged with the operator's `mapping:`.

docs/mappings.md is the reference; `MappingSpec` is the same thing as a pydantic model, so a
mistake in either file is reported by its path ("destinations.x.mapping.keys.case: ...").
Every key is known: a misspelt key is an error, never silently ignored. Plugin-specific data
goes under `options:`: the route step does not read it; the plugin instance gets the merged
options as `self.opts`, checked by the plugin's `options_model` when it declares one
(`Destination.options_problems`).
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crossdock.models import MessageType, validation_problems

AttributeGroup = Literal["properties", "traits"]
_BOTH: tuple[AttributeGroup, ...] = ("properties", "traits")


def _none_means_none(value: Any) -> Any:
    # `case: null` is as natural in YAML as `case: none`.
    return "none" if value is None else value


def _purposes(v: list[str]) -> list[str]:
    if any(not p.strip() for p in v):
        raise ValueError("consent purposes must be non-empty strings")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RulesSpec(_Strict):
    """Forwarding rules the plugin needs; the operator's `rules:` overrides them."""

    only_identified: bool = False
    require_consent: list[str] = Field(default_factory=list)
    #: user attributes (or identity types) the person must have, e.g. [phone] for SMS
    require_attributes: list[str] = Field(default_factory=list)

    _purposes = field_validator("require_consent")(_purposes)


class IdentitiesSpec(_Strict):
    #: identity types forwarded whatever the filter says ("profileId" is Crossdock's own id)
    always: list[str] = Field(default_factory=list)


class KeysSpec(_Strict):
    """Attribute-name rewriting, in this order: normalize, strip underscores, case."""

    normalize: Literal["none", "non_alphanumeric_to_underscore"] = "none"
    strip_leading_underscores: bool = False
    strip_trailing_underscores: bool = False
    case: Literal["none", "lower", "upper", "snake", "camel", "pascal"] = "none"
    apply_to: list[AttributeGroup] = Field(default_factory=lambda: list(_BOTH))

    _none = field_validator("normalize", "case", mode="before")(_none_means_none)


class ValuesSpec(_Strict):
    stringify: bool = False
    apply_to: list[AttributeGroup] = Field(default_factory=lambda: list(_BOTH))


class LimitsSpec(_Strict):
    event_attributes: int | None = Field(default=None, ge=0)
    user_attributes: int | None = Field(default=None, ge=0)
    string_length: int | None = Field(default=None, ge=1)


class MappingSpec(_Strict):
    forward_by_default: bool = True
    message_types: list[MessageType] | None = None
    rules: RulesSpec = Field(default_factory=RulesSpec)
    identities: IdentitiesSpec = Field(default_factory=IdentitiesSpec)
    keys: KeysSpec = Field(default_factory=KeysSpec)
    values: ValuesSpec = Field(default_factory=ValuesSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    #: user-attribute renames, applied before key normalization ($FirstName -> first_name)
    reserved: dict[str, str] = Field(default_factory=dict)
    #: event-name map, applied after the filter (which sees the original names)
    event_names: dict[str, str] = Field(default_factory=dict)
    #: Jinja2 templates rendered into payload["rendered"][name]
    templates: dict[str, str] = Field(default_factory=dict)
    #: how a rendered template is stored: text (default) or parsed json
    template_format: dict[str, Literal["text", "json"]] = Field(default_factory=dict)
    #: consent purposes the plugin reads: the payload carries `consent: {purpose: granted}`
    #: for each, the answer the forwarding rules read (for a channel's subscribe status)
    consent: list[str] = Field(default_factory=list)
    #: plugin-specific settings, merged like the rest and read by the plugin as `self.opts`
    #: (their keys are checked by the plugin's `options_model`, if any; documented on its page)
    options: dict[str, Any] = Field(default_factory=dict)

    _consent = field_validator("consent")(_purposes)

    @field_validator("reserved", "event_names")
    @classmethod
    def _non_empty_targets(cls, v: dict[str, str]) -> dict[str, str]:
        empty = [k for k, target in v.items() if not target.strip()]
        if empty:
            raise ValueError(f"{empty[0]!r} maps to an empty name")
        return v


KNOWN_KEYS = tuple(MappingSpec.model_fields)


def parse_mapping(mapping: dict[str, Any]) -> MappingSpec:
    """The mapping as a model (raises pydantic's ValidationError)."""
    return MappingSpec.model_validate(mapping)


def mapping_problems(mapping: dict[str, Any], path: str) -> list[str]:
    """Every problem in a merged mapping, as "path.key: message" (empty when valid)."""
    from crossdock.route.templates import template_problems

    if not isinstance(mapping, dict):
        return [f"{path}: must be a mapping, got {type(mapping).__name__}"]
    problems = [_unknown_key(str(key), path) for key in mapping if key not in KNOWN_KEYS]
    known = {k: v for k, v in mapping.items() if k in KNOWN_KEYS}
    try:
        parse_mapping(known)
    except ValidationError as exc:
        problems += [p.replace(": Extra inputs are not permitted", ": unknown key")
                     for p in validation_problems(exc, path)]
    templates = mapping.get("templates")
    if isinstance(templates, dict):
        # Checked even when something else is wrong, so one run reports everything.
        sources = {str(k): v for k, v in templates.items() if isinstance(v, str)}
        problems += template_problems(sources, f"{path}.templates")
    return problems


def _unknown_key(key: str, path: str) -> str:
    close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    hint = (f"did you mean {close[0]!r}?" if close
            else "plugin-specific data goes under `options:`")
    return f"{path}.{key}: unknown mapping key ({hint})"
