"""crossdock.phones: E.164 from what people type, with per-country rules, never guessed."""

from __future__ import annotations

import pytest

from crossdock.phones import PhoneError, calling_code, check_phone_region, e164


@pytest.mark.parametrize(("value", "region", "expected"), [
    ("+1 (650) 555-1212", None, "+16505551212"),
    ("06 1234 5678", "IT", "+390612345678"),       # Italy keeps the leading 0
    ("020 7946 0018", "GB", "+442079460018"),      # a British trunk 0 is dropped
    ("020 7946 0018", "gb", "+442079460018"),
    ("0044 20 7946 0018", None, "+442079460018"),  # 00 is the international prefix
    ("0044 20 7946 0018", "DE", "+442079460018"),
    ("+44 20 7946 0018", "US", "+442079460018"),   # a + number ignores the region
    (16505551212.0, "US", "+16505551212"),
])
def test_numbers_become_e164(value: object, region: str | None, expected: str) -> None:
    assert e164(value, region) == expected


@pytest.mark.parametrize(("value", "region", "rule"), [
    ("650 555 1212", None, "a national number (no + or 00 country prefix) and no country"),
    ("650 555 1212", "XX", "a national number"),   # an unknown region is no region
    ("+ call me", None, "not a phone number"),
    ("+1 12", None, "not a possible phone number in +1 (wrong length)"),
])
def test_unusable_numbers_are_refused_by_rule_never_by_value(
        value: str, region: str | None, rule: str) -> None:
    with pytest.raises(PhoneError) as raised:
        e164(value, region)
    assert str(raised.value).startswith(rule)
    assert "555" not in str(raised.value)


def test_the_no_region_error_says_where_a_region_comes_from() -> None:
    with pytest.raises(PhoneError, match=r"no country to read it in: set options.phone_region$"):
        e164("650 555 1212", no_region_hint="set options.phone_region")


def test_a_configured_region_is_checked_and_upper_cased() -> None:
    assert check_phone_region("us") == "US"
    assert check_phone_region(None) is None
    with pytest.raises(ValueError, match="'Atlantis' is not a region phone numbers are read"):
        check_phone_region("Atlantis")


def test_calling_code_splits_an_e164_number_where_the_country_code_ends() -> None:
    assert calling_code("+393471234567") == ("+39", "3471234567")
    assert calling_code("+16505551212") == ("+1", "6505551212")
    assert calling_code("+3545511234") == ("+354", "5511234")  # a three-digit code
    with pytest.raises(PhoneError):
        calling_code("no number")
