"""Attribute rules: which incoming user attributes a profile keeps, and how.

Pure functions, no storage. With the default rules:
- names are case sensitive and shorter than 50 characters;
- string values longer than 1,000 characters are truncated;
- the first value stored for an attribute fixes its type (string, number, boolean, date, array,
  object) for the whole account (its definition); a later value of another type, in any
  profile, is rejected for that attribute only;
- at most 25 custom attributes of each type are defined for the account;
- custom attribute names may not start with a reserved prefix (default "we_");
- no name may contain NUL (\\u0000), nor may an `email` (an identity as well as an attribute).
A `None` value removes the attribute. Every rejection and truncation is returned as a `Problem`
so the store can count it and show it with the profile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from crossdock.config import AttributeRulesConfig

#: System attributes: known to Crossdock, stored apart from custom ones. Segment's snake_case
#: and alternative spellings map onto these names.
SYSTEM_ATTRIBUTES = (
    "firstName", "lastName", "email", "phone", "gender", "birthDate", "company",
    "hashedEmail", "hashedPhone", "emailOptIn", "smsOptIn", "whatsappOptIn",
)
SYSTEM_ALIASES = {
    "first_name": "firstName", "last_name": "lastName", "birthday": "birthDate",
    "birth_date": "birthDate", "hashed_email": "hashedEmail", "hashed_phone": "hashedPhone",
    "email_opt_in": "emailOptIn", "sms_opt_in": "smsOptIn", "whatsapp_opt_in": "whatsappOptIn",
    # mParticle's reserved user attributes name the same things; SDKs that speak mParticle
    # send them, and the profile stores them under the names they mean.
    "$FirstName": "firstName", "$LastName": "lastName", "$Gender": "gender",
    "$Mobile": "phone",
}
#: mParticle's reserved address attributes, kept as the plain custom attributes they name
RESERVED_CUSTOM_ALIASES = {
    "$Address": "address", "$City": "city", "$State": "state", "$Zip": "zip",
    "$Country": "country",
}
#: every name the profile store keeps under another one (a filter naming either matches both)
STORED_NAMES = {**SYSTEM_ALIASES, **RESERVED_CUSTOM_ALIASES}
#: the identity types a profile carries (the identities filter's names)
IDENTITY_TYPES = ("userId", "anonymousId", "email")
#: what a person can be looked up by (`ProfileStore.find`): Crossdock's own id or an identity
LOOKUP_KINDS = ("profileId", *IDENTITY_TYPES)
ATTRIBUTE_TYPES = ("string", "number", "boolean", "date", "array", "object")

_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One attribute the rules rejected or changed: `rule` is a short code for counting."""

    name: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Stored:
    """An attribute as the store holds it."""

    type: str
    value: Any


class Typed(Protocol):
    """What `apply_rules` reads of an attribute a profile holds: its type."""

    @property
    def type(self) -> str: ...


def shown(name: str) -> str:
    """A name as a problem records it: NUL written as the four characters \\x00 (a
    PostgreSQL text column cannot hold NUL; the outbox writes its reasons the same way)."""
    return name.replace("\x00", "\\x00")


def value_type(value: Any) -> str:
    """The attribute type of a JSON value (an ISO 8601 date string counts as a date)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "date" if _ISO_DATE.match(value) else "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def split_traits(traits: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(system, custom) attributes of a traits object, system names normalised."""
    system: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in traits.items():
        canonical = SYSTEM_ALIASES.get(name, name)
        if canonical in SYSTEM_ATTRIBUTES:
            system[canonical] = value
        else:
            custom[RESERVED_CUSTOM_ALIASES.get(name, name)] = value
    return system, custom


def apply_rules(
    existing: Mapping[str, Typed],
    incoming: dict[str, Any],
    rules: AttributeRulesConfig,
    *,
    custom: bool,
    definitions: Mapping[str, str] | None = None,
    defined_per_type: Mapping[str, int] | None = None,
) -> tuple[dict[str, Stored | None], list[Problem]]:
    """The changes to make to `existing` (one profile's attributes) for `incoming` values:
    name -> new Stored, or None to remove; and the problems found. Attributes not mentioned in
    the result are left alone.

    `definitions` are the account's attribute definitions (name -> the type its first value
    fixed, for every profile) of at least the incoming names, and `defined_per_type` how many
    definitions of each type the account has (the per-type cap counts them); without them the
    profile's own attributes stand for the account. A removed attribute keeps its definition:
    its type stays fixed."""
    changes: dict[str, Stored | None] = {}
    problems: list[Problem] = []
    fixed: dict[str, str] = (dict(definitions) if definitions is not None
                             else {name: stored.type for name, stored in existing.items()})
    per_type: dict[str, int] = {}
    if defined_per_type is not None:
        per_type.update(defined_per_type)
    else:
        for kind in fixed.values():
            per_type[kind] = per_type.get(kind, 0) + 1
    for name, value in incoming.items():
        if not isinstance(name, str) or not name:
            problems.append(Problem(str(name), "name", "an attribute name must not be empty"))
            continue
        if "\x00" in name:
            # PostgreSQL text cannot hold NUL, and no one means a name with an invisible
            # character in it: refused on both engines alike, shown as \x00.
            problems.append(Problem(
                shown(name[:60]), "name",
                "attribute name must not contain NUL (\\u0000); attribute rejected",
            ))
            continue
        if len(name) > rules.max_name_length:
            problems.append(Problem(
                name[:60], "name_length",
                f"name must be shorter than {rules.max_name_length + 1} characters "
                f"({len(name)} given); attribute rejected",
            ))
            continue
        reserved = next((prefix for prefix in rules.reserved_prefixes
                         if name.startswith(prefix)), None) if custom else None
        if reserved is not None:
            problems.append(Problem(
                name, "reserved_prefix",
                f"names starting with {reserved!r} are reserved; attribute ignored",
            ))
            continue
        current = existing.get(name)
        if value is None:
            if current is not None:
                changes[name] = None
            continue
        if not custom and name == "email" and isinstance(value, str) and "\x00" in value:
            # An email is also an identity (profiles are joined by it); one with NUL is no
            # address anyone can be reached at, so it is neither linked nor kept.
            problems.append(Problem(
                name, "identity",
                "an email must not contain NUL (\\u0000); attribute rejected, not linked",
            ))
            continue
        kind = value_type(value)
        defined = fixed.get(name)
        if defined is not None and defined != kind:
            # A date string sent to a string attribute is still a string: only the reverse is
            # a type change worth refusing.
            if defined == "string" and kind == "date":
                kind = "string"
            else:
                problems.append(Problem(
                    name, "type",
                    f"type is fixed as {defined} by its first value (for the whole account); "
                    f"a {kind} was rejected",
                ))
                continue
        if isinstance(value, str) and len(value) > rules.max_string_length:
            problems.append(Problem(
                name, "truncated",
                f"value of {len(value)} characters truncated to {rules.max_string_length}",
            ))
            value = value[: rules.max_string_length]
        if defined is None and custom:
            if per_type.get(kind, 0) >= rules.max_custom_per_type:
                problems.append(Problem(
                    name, "type_limit",
                    f"at most {rules.max_custom_per_type} custom {kind} attributes are "
                    "defined for the account; attribute rejected",
                ))
                continue
            per_type[kind] = per_type.get(kind, 0) + 1
        if defined is None:
            fixed[name] = kind
        changes[name] = Stored(kind, value)
    return changes, problems
