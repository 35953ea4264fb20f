"""Google's rules for the user data Customer Match and click conversions carry, which are not
Meta's (plugins/facebook_audience/normalize.py): a phone number is hashed in E.164 with its
"+", a Gmail address loses the dots of its local part, country, state, city and postal code
go in clear, and a conversion's time is "yyyy-mm-dd hh:mm:ss+hh:mm".

Every function raises ValueRefused naming the rule (never the value: values are personal
data) for a value Google could not match, so the plugin leaves it out and says so.

Sources (docs/destinations/google_ads.md): developers.google.com/google-ads/api/docs/
conversions/enhance-conversions ("Normalize and hash user-provided data", "Email address
formatting"), the Campaign Manager 360 enhanced conversions guide (the Gmail rule), and the
ClickConversion reference (conversion_date_time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from typing import Any

from crossdock.destination import ValueRefused
from crossdock.phones import PhoneError, e164

#: the domains whose local part Google reads without dots (a.b@gmail.com is ab@gmail.com)
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


def sha256(text: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 text, as Google wants every hashed field."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _clean(value: Any) -> str:
    """Trimmed, lower-cased, NFC text (Google: remove leading and trailing whitespace,
    convert the text to lowercase)."""
    return unicodedata.normalize("NFC", str(value)).strip().lower()


def email(value: Any) -> str:
    """The normalized address, hashed: trimmed, lower case, and for gmail.com and
    googlemail.com without the dots of the part before the @. A `+suffix` is kept: Google's
    text does not say to remove it (RudderStack does; Google would then miss the person)."""
    text = _clean(value)
    if not _EMAIL.match(text):
        raise ValueRefused("email: not an email address (name@domain.tld)")
    local, _, domain = text.rpartition("@")
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
    return sha256(f"{local}@{domain}")


def phone(value: Any, region: str | None) -> str:
    """The number in E.164 ("+" and digits), hashed; `region` reads a national number."""
    try:
        number = e164(value, region, no_region_hint="set options.phone_region")
    except PhoneError as exc:
        raise ValueRefused(f"phone: {exc}") from None
    return sha256(number)


def name(value: Any, what: str) -> str:
    """A first or last name, trimmed and lower case, hashed."""
    text = _clean(value)
    if not text:
        raise ValueRefused(f"{what}: empty")
    return sha256(text)


def street(value: Any) -> str:
    """A street address, trimmed and lower case, hashed."""
    return name(value, "street_address")


def country(value: Any) -> str:
    """A two-letter ISO 3166-1 country code, upper case, in clear."""
    text = str(value).strip()
    if not _COUNTRY.match(text):
        raise ValueRefused("country_code: a two-letter ISO 3166-1 code (US, FR)")
    return text.upper()


def postal_code(value: Any) -> str:
    """A postal code, trimmed, in clear (Google does not hash it)."""
    text = str(value).strip()
    if not text:
        raise ValueRefused("postal_code: empty")
    return text


def conversion_time(value: Any, zone: dt.tzinfo = dt.UTC) -> str:
    """An ISO-8601 time as ClickConversion.conversion_date_time takes it:
    "yyyy-mm-dd hh:mm:ss+|-hh:mm" (a time without a zone is taken in `zone`)."""
    if not isinstance(value, str) or not value:
        raise ValueRefused("conversion_date_time: the message has no timestamp")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueRefused("conversion_date_time: not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    offset = moment.strftime("%z")  # +0200
    return moment.strftime("%Y-%m-%d %H:%M:%S") + f"{offset[:3]}:{offset[3:]}"
