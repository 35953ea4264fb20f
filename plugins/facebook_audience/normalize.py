"""Meta's Custom Audience field rules: normalize each value, then lower-hex SHA-256 it.

Every rule follows Meta's "Customer file: formatting" guide. Two promises matter more than the
rest: MADID and EXTERN_ID are sent as they are (normalized, never hashed), and a value that
already is a SHA-256 digest (64 hex characters) is passed through, so nothing is hashed twice.
A value that cannot be normalized (an email without "@", a month 13) becomes "" (Meta's "no
value") rather than a hash of garbage that could never match anyone.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from typing import Any

#: every schema field this plugin can send, in Meta's spelling
SCHEMA_FIELDS = ("EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "FN", "LN", "FI", "CT", "ST",
                 "ZIP", "COUNTRY", "MADID", "EXTERN_ID")
#: fields Meta wants in clear text
UNHASHED_FIELDS = frozenset({"MADID", "EXTERN_ID"})

_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_US_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")

US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "district of columbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
    "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi", "minnesota": "mn",
    "mississippi": "ms", "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv",
    "new hampshire": "nh", "new jersey": "nj", "new mexico": "nm", "new york": "ny",
    "north carolina": "nc", "north dakota": "nd", "ohio": "oh", "oklahoma": "ok",
    "oregon": "or", "pennsylvania": "pa", "rhode island": "ri", "south carolina": "sc",
    "south dakota": "sd", "tennessee": "tn", "texas": "tx", "utah": "ut", "vermont": "vt",
    "virginia": "va", "washington": "wa", "west virginia": "wv", "wisconsin": "wi",
    "wyoming": "wy",
}
#: country names people actually type, to ISO 3166-1 alpha-2; two-letter codes pass as they are
COUNTRY_NAMES = {
    "united states": "us", "united states of america": "us", "usa": "us", "u.s.": "us",
    "u.s.a.": "us", "america": "us", "united kingdom": "gb", "uk": "gb", "great britain": "gb",
    "england": "gb", "canada": "ca", "australia": "au", "germany": "de", "deutschland": "de",
    "france": "fr", "spain": "es", "españa": "es", "italy": "it", "italia": "it",
    "netherlands": "nl", "ireland": "ie", "new zealand": "nz", "mexico": "mx", "méxico": "mx",
    "brazil": "br", "brasil": "br", "india": "in", "japan": "jp", "china": "cn",
    "south africa": "za", "sweden": "se", "norway": "no", "denmark": "dk", "finland": "fi",
    "switzerland": "ch", "austria": "at", "belgium": "be", "portugal": "pt", "poland": "pl",
}


def is_sha256(value: str) -> bool:
    """True for a value that already is a hex SHA-256 digest (never hash it again)."""
    return bool(_SHA256_HEX.match(value))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: Any) -> str:
    return unicodedata.normalize("NFC", str(value)).strip()


def _letters(value: Any, keep_spaces: bool = False) -> str:
    """Lower-case letters only (any script): punctuation, digits and symbols dropped."""
    out = "".join(ch for ch in _text(value).lower()
                  if ch.isalpha() or (keep_spaces and ch.isspace()))
    return " ".join(out.split()) if keep_spaces else out


def email(value: Any) -> str:
    text = _text(value).lower()
    return text if _EMAIL.match(text) else ""


def phone(value: Any, default_country_code: str | None = None) -> str:
    """Digits only, with the country code and no leading zeros ("+1 (650) 555-0100" ->
    "16505550100"). A national number ("0650 555 0100") gets `default_country_code` when one
    is configured; without one it is sent as its digits, which Meta may not match."""
    raw = _text(value)
    digits = re.sub(r"\D", "", raw)
    international = raw.startswith("+") or digits.startswith("00")
    digits = digits.lstrip("0")
    if not international and default_country_code:
        code = re.sub(r"\D", "", default_country_code)
        if code and not digits.startswith(code):
            digits = code + digits
    return digits if len(digits) >= 7 else ""


def gender(value: Any) -> str:
    text = _letters(value)
    if text in ("m", "male", "man"):
        return "m"
    if text in ("f", "female", "woman"):
        return "f"
    return ""


def _number(value: Any, low: int, high: int, width: int) -> str:
    text = _text(value)
    if not text.isdigit() or not low <= int(text) <= high:
        return ""
    return str(int(text)).zfill(width)


def birth_year(value: Any) -> str:
    return _number(value, 1900, 2100, 4)


def birth_month(value: Any) -> str:
    return _number(value, 1, 12, 2)


def birth_day(value: Any) -> str:
    return _number(value, 1, 31, 2)


def first_initial(value: Any) -> str:
    return _letters(value)[:1]


def city(value: Any) -> str:
    """Letters only, no spaces: "New York" -> "newyork"."""
    return _letters(value)


def state(value: Any) -> str:
    """US states as the 2-letter code ("California" or "CA" -> "ca"); elsewhere letters only."""
    name = _letters(value, keep_spaces=True)
    return US_STATES.get(name, name.replace(" ", ""))


def country(value: Any) -> str:
    text = _text(value).lower()
    if text in COUNTRY_NAMES:
        return COUNTRY_NAMES[text]
    letters = _letters(text)
    return letters if len(letters) == 2 else COUNTRY_NAMES.get(letters, "")


def zip_code(value: Any, country_code: str = "") -> str:
    """Lower case without spaces or dashes; a US ZIP (or ZIP+4) keeps its first 5 digits."""
    text = _text(value).lower()
    if country_code in ("", "us") and (match := _US_ZIP.match(text)):
        return match.group(1)
    return re.sub(r"[\s-]", "", text)


def madid(value: Any) -> str:
    """Mobile advertiser id (IDFA / AAID): lower case, hyphens kept, not hashed."""
    return _text(value).lower()


def extern_id(value: Any) -> str:
    return _text(value)


_RULES: dict[str, Callable[[Any], str]] = {
    "EMAIL": email, "GEN": gender, "DOBY": birth_year, "DOBM": birth_month,
    "DOBD": birth_day, "FN": _letters, "LN": _letters, "FI": first_initial, "CT": city,
    "ST": state, "COUNTRY": country, "MADID": madid, "EXTERN_ID": extern_id,
}


def normalize(field: str, value: Any, *, country_code: str = "",
              default_phone_country_code: str | None = None) -> str:
    """`value` normalized by Meta's rule for `field` ("" when it is empty or unusable)."""
    if value is None or _text(value) == "":
        return ""
    if field == "PHONE":
        return phone(value, default_phone_country_code)
    if field == "ZIP":
        return zip_code(value, country_code)
    try:
        rule = _RULES[field]
    except KeyError:
        known = ", ".join(SCHEMA_FIELDS)
        raise ValueError(f"schema field {field!r} is not one of {known}") from None
    return rule(value)


def prepare(field: str, value: Any, *, country_code: str = "",
            default_phone_country_code: str | None = None) -> str:
    """The value Meta receives for `field`: normalized and hashed, or clear for MADID and
    EXTERN_ID; a value that already is a SHA-256 digest passes through (lower-cased)."""
    if value is None:
        return ""
    if field not in UNHASHED_FIELDS and isinstance(value, str) and is_sha256(value.strip()):
        return value.strip().lower()
    text = normalize(field, value, country_code=country_code,
                     default_phone_country_code=default_phone_country_code)
    if not text or field in UNHASHED_FIELDS:
        return text
    return sha256_hex(text)
