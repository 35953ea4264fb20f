"""Meta's Custom Audience field rules: normalize each value, then lower-hex SHA-256 it.

Where Meta's documentation ("Customer file: formatting guidelines") and Meta's own code agree,
that is the rule. Where they differ, the code Meta publishes for the same job decides, its
choices named on docs/destinations/facebook_audience.md with an example each:

- names (FN, LN): Meta's parameter builder (facebook/capi-param-builder, `stringUtil.js`
  `getNormalizedName`): lower case, whitespace and ASCII punctuation removed, digits and
  letters of every script kept ("John2" -> "john2", "Valéry" -> "valéry");
- cities (CT): the same builder's `getNormalizedCity`: a-z and 0-9 only, starting with a
  letter ("District9" -> "district9", "São Paulo" -> "sopaulo");
- states (ST): US and Canadian names to their two-letter codes (the builder's tables), other
  regions by the city rule, whole (the builder cuts them to two letters, which Meta's guide
  does not ask for and which makes "Bavaria" "ba", Bahia's code);
- gender (GEN): the builder's words for m and f ("Boy", "Woman", "Mr" ...);
- dates of birth: dates.py; phone numbers: `phonenumbers`, read in the person's country or the
  configured default region, sent as E.164 digits.

Two promises matter more than the rest: MADID and EXTERN_ID are sent as they are (normalized,
never hashed), and a value that already is a SHA-256 digest (64 hex characters) is passed
through, so nothing is hashed twice. A value that cannot be normalized raises `Unusable`,
whose text names the field and the rule (never the value: these are personal data and the
text is logged); the destination leaves the field empty (Meta's "no value") and reports it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crossdock.dates import DateOrder, month_number
from crossdock.destination import ValueRefused, is_sha256_hex, sha256_hex
from crossdock.phones import PHONE_REGIONS, PhoneError, e164
from crossdock.plugins.facebook_audience.places import COUNTRY_CODES, STATE_CODES, letters_key

#: every schema field this plugin can send, in Meta's spelling
SCHEMA_FIELDS = ("EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "FN", "LN", "FI", "CT", "ST",
                 "ZIP", "COUNTRY", "MADID", "EXTERN_ID")
#: fields Meta wants in clear text
UNHASHED_FIELDS = frozenset({"MADID", "EXTERN_ID"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_US_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")
# Whitespace and the ASCII punctuation of Meta's builder (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~).
_SPACE_OR_PUNCTUATION = re.compile(r"[\s!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]+")
_NOT_LATIN_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]+")

#: Meta's parameter builder's words for each gender (`genderUtil.js`), less the pronouns and
#: family words no gender field holds
GENDER_WORDS = {
    "m": frozenset({"m", "male", "man", "boy", "gentleman", "guy", "mr", "mister", "sir",
                    "he", "him"}),
    "f": frozenset({"f", "female", "woman", "girl", "lady", "mrs", "ms", "miss", "madam",
                    "she", "her"}),
}


@dataclass(frozen=True, slots=True)
class Context:
    """What a field's rule may need beyond its value: the person's country (ZIP, PHONE) and
    the operator's settings (phone region, date order)."""

    country: str = ""
    phone_region: str | None = None
    date_order: DateOrder = "month_first"


#: a value Meta cannot match; the reason names the rule it broke, not the value
Unusable = ValueRefused


def _text(value: Any) -> str:
    return unicodedata.normalize("NFC", str(value)).strip()


def email(value: Any, context: Context) -> str:
    text = _text(value).lower()
    if not _EMAIL.match(text):
        raise Unusable("not an email address (no name@domain.tld)")
    return text


def phone(value: Any, context: Context) -> str:
    """E.164 digits without "+": "+1 (650) 555-1212" -> "16505551212", "06 1234 5678" read in
    Italy -> "390612345678" (the 0 is part of an Italian number). A national number is read in
    the person's country, else the configured default region; with neither it is refused: its
    digits alone would never match."""
    region = context.country.upper() if context.country.upper() in PHONE_REGIONS \
        else context.phone_region
    try:
        return e164(value, region, no_region_hint="set settings.default_phone_region or the "
                                                  "person's country")[1:]
    except PhoneError as exc:
        raise Unusable(str(exc)) from None


def gender(value: Any, context: Context) -> str:
    word = _SPACE_OR_PUNCTUATION.sub("", _text(value).lower())
    for code, words in GENDER_WORDS.items():
        if word in words:
            return code
    raise Unusable("Meta takes m or f; the value is none of the words for either")


def _number(value: Any, low: int, high: int, width: int, what: str) -> str:
    text = _text(value)
    if not text.isdigit() or not low <= int(text) <= high:
        raise Unusable(f"{what} must be a number from {low} to {high}")
    return str(int(text)).zfill(width)


def birth_year(value: Any, context: Context) -> str:
    return _number(value, 1900, 2100, 4, "a birth year")


def birth_month(value: Any, context: Context) -> str:
    named = month_number(_text(value))
    if named is not None:
        return f"{named:02d}"
    return _number(value, 1, 12, 2, "a birth month (or its name)")


def birth_day(value: Any, context: Context) -> str:
    return _number(value, 1, 31, 2, "a birth day")


def name(value: Any, context: Context) -> str:
    """Lower case without whitespace or ASCII punctuation; digits and every script's letters
    kept: "Mary-Ann" -> "maryann", "John2" -> "john2", "Valéry" -> "valéry"."""
    text = _SPACE_OR_PUNCTUATION.sub("", _text(value).lower())
    if not text:
        raise Unusable("nothing left but spaces and punctuation")
    return text


def first_initial(value: Any, context: Context) -> str:
    return name(value, context)[:1]


def city(value: Any, context: Context) -> str:
    """a-z and 0-9 only, starting with a letter: "New York" -> "newyork",
    "District9" -> "district9", "São Paulo" -> "sopaulo" (Meta's builder drops the ã)."""
    text = _NOT_LATIN_ALPHANUMERIC.sub("", _text(value)).lower()
    if not text[:1].isalpha():
        raise Unusable("a-z and 0-9 only, starting with a letter: nothing like that is left")
    return text


def state(value: Any, context: Context) -> str:
    """US states and Canadian provinces as their two-letter codes ("New York" -> "ny",
    "Québec" -> "qc", "CA" -> "ca"); other regions by the city rule ("Bavaria" -> "bavaria")."""
    compact = _NOT_LATIN_ALPHANUMERIC.sub("", _text(value)).lower()
    if len(compact) == 2 and compact.isalpha():  # already a code ("CA", "N.Y.")
        return compact
    return STATE_CODES.get(letters_key(_text(value))) or city(value, context)


def country(value: Any, context: Context | None = None) -> str:
    """ISO 3166-1 alpha-2 in lower case: a code ("US", "gb") or a name ("United Kingdom")."""
    key = letters_key(_text(value))
    if key in COUNTRY_CODES:
        return COUNTRY_CODES[key]
    if len(key) == 2 and key.upper() in PHONE_REGIONS:
        return key
    raise Unusable("not an ISO 3166-1 two-letter country code or a known country name")


def zip_code(value: Any, context: Context) -> str:
    """Lower case without spaces or dashes; a US ZIP (or ZIP+4) keeps its first 5 digits."""
    text = _text(value).lower()
    if context.country in ("", "us") and (match := _US_ZIP.match(text)):
        return match.group(1)
    return re.sub(r"[\s-]", "", text)


def madid(value: Any, context: Context) -> str:
    """Mobile advertiser id (IDFA / AAID): lower case, hyphens kept, not hashed."""
    return _text(value).lower()


def extern_id(value: Any, context: Context) -> str:
    return _text(value)


_RULES: dict[str, Callable[[Any, Context], str]] = {
    "EMAIL": email, "PHONE": phone, "GEN": gender, "DOBY": birth_year, "DOBM": birth_month,
    "DOBD": birth_day, "FN": name, "LN": name, "FI": first_initial, "CT": city, "ST": state,
    "ZIP": zip_code, "COUNTRY": country, "MADID": madid, "EXTERN_ID": extern_id,
}


def normalize(field: str, value: Any, context: Context | None = None) -> str:
    """`value` normalized by Meta's rule for `field` ("" when it is empty); Unusable when it
    cannot be."""
    try:
        rule = _RULES[field]
    except KeyError:
        known = ", ".join(SCHEMA_FIELDS)
        raise ValueError(f"schema field {field!r} is not one of {known}") from None
    if value is None or _text(value) == "":
        return ""
    return rule(value, context or Context())


def prepare(field: str, value: Any, context: Context | None = None) -> str:
    """The value Meta receives for `field`: normalized and hashed, or clear for MADID and
    EXTERN_ID; a value that already is a SHA-256 digest passes through (lower-cased)."""
    if value is None:
        return ""
    if field not in UNHASHED_FIELDS and isinstance(value, str) and is_sha256_hex(value.strip()):
        return value.strip().lower()
    text = normalize(field, value, context)
    if not text or field in UNHASHED_FIELDS:
        return text
    return sha256_hex(text)

