"""The shape of a mapping: mappings/<plugin>.yaml deep-merged with the operator's `mapping:`.

docs/mappings.md is the reference; `MappingSpec` is the same thing as a pydantic model, so a
mistake in either file is reported by its path ("destinations.x.mapping.keys.case: ...").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crossdock.models import validation_problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RulesSpec(_Strict):
    only_identified: bool = False
    require_consent: list[str] = Field(default_factory=list)


class IdentitiesSpec(_Strict):
    #: identity types forwarded whatever the filter says ("profileId" is Crossdock's own id)
    always: list[str] = Field(default_factory=list)


_BOTH: tuple[Literal["properties", "traits"], ...] = ("properties", "traits")


class KeysSpec(_Strict):
    normalize: Literal["none", "non_alphanumeric_to_underscore"] = "none"
    strip_leading_underscores: bool = False
    case: Literal["none", "lower", "upper", "snake", "camel", "pascal"] = "none"
    apply_to: list[Literal["properties", "traits"]] = Field(
        default_factory=lambda: list(_BOTH)
    )


class ValuesSpec(_Strict):
    stringify: bool = False


class LimitsSpec(_Strict):
    event_attributes: int | None = Field(default=None, ge=0)
    user_attributes: int | None = Field(default=None, ge=0)
    string_length: int | None = Field(default=None, ge=1)


class MappingSpec(_Strict):
    forward_by_default: bool = True
    message_types: list[Literal["track", "identify", "page", "screen", "alias"]] | None = None
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
    #: free-form settings a plugin reads from its own mapping (documented on its page)
    options: dict[str, Any] = Field(default_factory=dict)


def parse_mapping(mapping: dict[str, Any]) -> MappingSpec:
    """The mapping as a model (raises pydantic's ValidationError)."""
    return MappingSpec.model_validate(mapping)


def mapping_problems(mapping: dict[str, Any], path: str) -> list[str]:
    """Every problem in a merged mapping, as "path.key: message" (empty when valid)."""
    from crossdock.route.templates import template_problems

    try:
        spec = parse_mapping(mapping)
    except ValidationError as exc:
        return validation_problems(exc, path)
    return template_problems(spec.templates, f"{path}.templates")
