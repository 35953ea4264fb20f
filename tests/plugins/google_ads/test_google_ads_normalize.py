"""Google's user data rules (plugins/google_ads/normalize.py), each against the value Google's
own text gives, and where they differ from Meta's."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from crossdock.destination import ValueRefused
from crossdock.plugins.google_ads import normalize


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("raw", "normalized"), [
    ("  Jane.Doe@Example.COM ", "jane.doe@example.com"),  # dots kept outside Gmail
    ("jane.doe@gmail.com", "janedoe@gmail.com"),
    ("J.A.N.E@GoogleMail.com", "jane@googlemail.com"),
    ("jane.doe+ads@gmail.com", "janedoe+ads@gmail.com"),  # Google does not strip +suffix
])
def test_emails_are_trimmed_lowered_and_gmail_loses_its_dots(raw: str, normalized: str
                                                              ) -> None:
    assert normalize.email(raw) == h(normalized)


def test_a_phone_is_hashed_in_e164_with_its_plus_unlike_meta() -> None:
    assert normalize.phone("+1 (800) 555-0102", None) == h("+18005550102")
    assert normalize.phone("06 12 34 56 78", "FR") == h("+33612345678")
    with pytest.raises(ValueRefused, match=r"^phone: .*set options.phone_region"):
        normalize.phone("06 12 34 56 78", None)


def test_names_and_streets_are_hashed_but_country_and_postal_code_are_not() -> None:
    assert normalize.name("  Émile ", "first_name") == h("émile")
    assert normalize.street(" 1600 Amphitheatre Pkwy ") == h("1600 amphitheatre pkwy")
    assert normalize.country(" us ") == "US"
    assert normalize.postal_code(" 94043 ") == "94043"
    with pytest.raises(ValueRefused, match=r"^country_code: a two-letter"):
        normalize.country("USA")
    with pytest.raises(ValueRefused, match=r"^email: not an email"):
        normalize.email("jane")


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-05-01T12:30:05Z", "2024-05-01 12:30:05+00:00"),
    ("2024-05-01T12:30:05.123-07:00", "2024-05-01 12:30:05-07:00"),
    ("2024-05-01T12:30:05+05:30", "2024-05-01 12:30:05+05:30"),
])
def test_conversion_times_take_googles_format(raw: str, expected: str) -> None:
    assert normalize.conversion_time(raw) == expected


def test_a_time_without_a_zone_is_read_in_the_given_one() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    assert normalize.conversion_time("2024-05-01T12:30:05", paris) == (
        "2024-05-01 12:30:05+02:00")
    with pytest.raises(ValueRefused, match=r"^conversion_date_time: not an ISO-8601"):
        normalize.conversion_time("yesterday")
