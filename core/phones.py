"""Phone numbers in E.164, read from what people type, for every destination that wants one.

    e164("+1 (650) 555-1212")          -> "+16505551212"
    e164("06 1234 5678", "IT")          -> "+390612345678"  (the 0 belongs to an Italian number)
    e164("020 7946 0018", "GB")         -> "+442079460018"  (the trunk 0 is dropped)
    e164("0044 20 7946 0018")           -> "+442079460018"  (00: the international prefix)
    e164("650 555 1212")                -> PhoneError: a national number and no region

A national number is read in `region` (ISO 3166-1 alpha-2); whether its leading 0 is a trunk
prefix or part of the number, and which countries share a calling code, are per-country rules
that `phonenumbers` knows and a regex does not. A number with no region to read it in is
refused rather than guessed: its digits alone would reach nobody, or someone else.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import phonenumbers

#: the regions national numbers can be read in (ISO 3166-1 alpha-2, upper case)
PHONE_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)

_NO_REGION = "a national number (no + or 00 country prefix) and no country to read it in"


def check_phone_region(value: str | None) -> str | None:
    """A configured region national numbers are read in, upper-cased; ValueError for a
    region `phonenumbers` does not know (for a settings or options validator)."""
    if value is None:
        return None
    if value.upper() not in PHONE_REGIONS:
        raise ValueError(f"{value!r} is not a region phone numbers are read in "
                         "(ISO 3166-1 alpha-2, e.g. US)")
    return value.upper()


class PhoneError(ValueError):
    """A value that is no usable phone number; the text names the rule, never the value (it is
    logged, and phone numbers are personal data)."""


def e164(value: Any, region: str | None = None, *, no_region_hint: str = "") -> str:
    """The number as E.164 ("+" and up to 15 digits). `region` reads a national number; a
    region `phonenumbers` does not know counts as none. `no_region_hint` ends the error for a
    national number without one (say which setting gives it)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number sent as JSON: 16505551212.0 is no "…12120"
    raw = unicodedata.normalize("NFC", str(value)).strip()
    digits = re.sub(r"\D", "", raw)
    known = region.upper() if region and region.upper() in PHONE_REGIONS else None
    try:
        if raw.startswith("+"):
            number = phonenumbers.parse(raw, None)
        elif known is not None:
            number = phonenumbers.parse(raw, known)
            if not phonenumbers.is_possible_number(number) and digits.startswith("00"):
                number = phonenumbers.parse("+" + digits[2:], None)
        elif digits.startswith("00"):  # the international prefix of most of the world
            number = phonenumbers.parse("+" + digits[2:], None)
        else:
            raise PhoneError(f"{_NO_REGION}: {no_region_hint}" if no_region_hint
                             else _NO_REGION)
    except phonenumbers.NumberParseException:
        raise PhoneError("not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        where = phonenumbers.region_code_for_number(number) or f"+{number.country_code}"
        raise PhoneError(f"not a possible phone number in {where} (wrong length)")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def calling_code(number: str) -> tuple[str, str]:
    """An E.164 number (as `e164` returns it) split into its country calling code with a "+"
    and the national significant number: "+393471234567" -> ("+39", "3471234567"). For APIs
    that take the two apart (MailUp's MobilePrefix and MobileNumber); which digits are the
    calling code is phonenumbers' knowledge (one to three digits, by country)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        raise PhoneError("not a phone number") from None
    return f"+{parsed.country_code}", str(phonenumbers.national_significant_number(parsed))
