"""Meta's normalization rules, field by field, with SHA-256 computed here from the expected
normalized text (so a wrong rule and a wrong hash both fail).

Vectors marked "param builder" are from Meta's own normalizer, facebook/capi-param-builder
(client_js/shared/tests/{name,city,state,gender}Util.test.js); "python SDK" from
facebook/facebook-python-business-sdk (facebook_business/adobjects/serverside/tests/
normalize_test.py). Where our rule differs from theirs on purpose the test says so."""

from __future__ import annotations

import hashlib

import pytest

from crossdock.plugins.facebook_audience import normalize
from crossdock.plugins.facebook_audience.normalize import Context, Unusable


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(("field", "raw", "expected"), [
    ("EMAIL", "  John.Doe@Example.COM ", "john.doe@example.com"),
    ("EMAIL", "ÉLODIE@exemple.fr", "élodie@exemple.fr"),
    ("EMAIL", "fo'o@bar.com", "fo'o@bar.com"),  # python SDK: a valid address
    ("PHONE", "+1 (650) 555-1212", "16505551212"),
    ("PHONE", "0044 20 7946 0958", "442079460958"),
    ("PHONE", "001-650-555-1212", "16505551212"),
    ("GEN", "Female", "f"),
    ("GEN", " M ", "m"),
    ("DOBY", "1990", "1990"),
    ("DOBM", "7", "07"),
    ("DOBM", 12, "12"),
    ("DOBD", "4", "04"),
    ("DOBD", "1", "01"),  # python SDK
    ("DOBD", "31", "31"),  # python SDK
    ("FN", "Mary-Ann", "maryann"),
    ("FN", "  José ", "josé"),
    ("LN", "O'Neil", "oneil"),
    ("FI", "Zoë", "z"),
    ("FI", "ABC", "a"),  # python SDK
    ("CT", "New York", "newyork"),
    ("ST", "California", "ca"),
    ("ST", "NY", "ny"),
    ("ZIP", "94025-1234", "94025"),
    ("ZIP", "SW1A 1AA", "sw1a1aa"),
    ("COUNTRY", "US", "us"),
    ("COUNTRY", "United States", "us"),
    ("COUNTRY", "United Kingdom", "gb"),
])
def test_hashed_fields(field: str, raw: object, expected: str) -> None:
    assert normalize.normalize(field, raw) == expected
    assert normalize.prepare(field, raw) == sha(expected)


# -- names and cities: Meta's parameter builder keeps digits ----------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("John2", "john2"),  # digits stay: we used to send "john"
    ("John", "john"),  # param builder
    ("    Na'than-Boile    ", "nathanboile"),  # param builder
    ("정", "정"),  # param builder: letters of every script stay
    ("Valéry", "valéry"),  # param builder
    ("Jean-Pierre", "jeanpierre"),  # param builder
    ("Van Der Berg", "vanderberg"),  # param builder
    ("Dr. Smith", "drsmith"),  # param builder
    ("Vale\u0301ry", "valéry"),  # a decomposed é hashes as the composed one (NFC)
])
def test_names_follow_metas_parameter_builder(raw: str, expected: str) -> None:
    for field in ("FN", "LN"):
        assert normalize.prepare(field, raw) == sha(expected)


@pytest.mark.parametrize(("raw", "expected"), [
    ("St. Louis 2", "stlouis2"),  # digits stay: we used to send "stlouis"
    ("District9", "district9"),  # param builder
    ("Area51City", "area51city"),  # param builder
    ("Menlo Park", "menlopark"),  # param builder
    (" Menlo-Park ", "menlopark"),  # param builder
    ("Washington, D.C.", "washingtondc"),  # param builder
    ("New_York", "newyork"),  # param builder
    ("São Paulo", "sopaulo"),  # param builder: letters outside a-z are dropped, not folded
    ("Zürich", "zrich"),  # param builder
])
def test_cities_follow_metas_parameter_builder(raw: str, expected: str) -> None:
    assert normalize.prepare("CT", raw) == sha(expected)


@pytest.mark.parametrize("raw", ["123", "9 Elms", "---", "東京"])
def test_a_city_must_start_with_a_letter(raw: str) -> None:
    # param builder: "should return null for cities starting with numbers"
    with pytest.raises(Unusable, match="starting with a letter"):
        normalize.prepare("CT", raw)


# -- states, provinces and countries ----------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("New York", "ny"),
    ("new york", "ny"),
    (" California. ", "ca"),  # param builder
    ("CA", "ca"),  # param builder
    ("N.Y.", "ny"),
    ("District of Columbia", "dc"),
    ("Rhode Island", "ri"),  # param builder
    ("Ontario", "on"),  # param builder's Canadian provinces
    ("British Columbia", "bc"),
    ("Newfoundland and Labrador", "nl"),
    ("Québec", "qc"),  # folded before the lookup; the builder would send "qu"
    ("Bavaria", "bavaria"),  # Meta's guide: non-US states whole; the builder cuts to "ba"
    ("Île-de-France", "ledefrance"),  # the city rule for the rest: letters outside a-z drop
])
def test_states_and_provinces(raw: str, expected: str) -> None:
    assert normalize.prepare("ST", raw) == sha(expected)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Deutschland", "de"), ("U.S.A.", "us"), ("UK", "gb"), ("España", "es"), ("fr", "fr"),
    ("Österreich", "at"),
])
def test_countries(raw: str, expected: str) -> None:
    assert normalize.prepare("COUNTRY", raw) == sha(expected)


# -- gender words ----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("Boy", "m"), ("Girl", "f"), ("Woman", "f"), ("Man", "m"), ("MALE", "m"),
    ("WoMaN", "f"), ("Mr.", "m"), ("Mrs", "f"), ("lady", "f"),  # param builder's words
])
def test_gender_words(raw: str, expected: str) -> None:
    assert normalize.prepare("GEN", raw) == sha(expected)


# -- dates of birth (the dates themselves: tests/core/test_dates.py) --------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("January", "01"), ("Jan", "01"), ("jan.", "01"), ("SEPT", "09"), ("7", "07"),
])
def test_birth_months_by_name_or_number(raw: str, expected: str) -> None:
    assert normalize.prepare("DOBM", raw) == sha(expected)


# -- phone numbers ----------------------------------------------------------------------------

def test_a_national_number_keeps_the_zero_that_belongs_to_it() -> None:
    # Italian numbers keep their leading 0 after the country code: +39 06 1234 5678.
    italy = Context(phone_region="IT")
    assert normalize.normalize("PHONE", "06 1234 5678", italy) == "390612345678"
    assert normalize.prepare("PHONE", "06 1234 5678", italy) == sha("390612345678")


@pytest.mark.parametrize(("raw", "context", "expected"), [
    ("020 7946 0958", Context(phone_region="GB"), "442079460958"),  # the UK trunk 0 goes
    ("(650) 555-1212", Context(phone_region="US"), "16505551212"),
    ("06 1234 5678", Context(country="it"), "390612345678"),  # the person's country
    ("06 1234 5678", Context(country="it", phone_region="US"), "390612345678"),
    ("+1 650 555 1212", Context(phone_region="GB"), "16505551212"),  # its own code wins
    ("011 44 20 7946 0958", Context(phone_region="US"), "442079460958"),  # US exit code
    ("0044 20 7946 0958", Context(phone_region="US"), "442079460958"),
])
def test_phone_numbers_become_e164_digits(raw: str, context: Context, expected: str) -> None:
    assert normalize.normalize("PHONE", raw, context) == expected


def test_a_national_number_without_a_region_is_refused_not_guessed() -> None:
    with pytest.raises(Unusable, match=r"a national number .* no country to read it in"):
        normalize.prepare("PHONE", "06 1234 5678")


@pytest.mark.parametrize(("field", "raw", "rule"), [
    ("EMAIL", "not-an-email", "not an email address"),
    ("EMAIL", "a@b", "not an email address"),  # python SDK
    ("PHONE", "+1 12", "not a possible phone number"),
    ("PHONE", "+ call me", "not a phone number"),
    ("GEN", "x", "m or f"),
    ("DOBM", "13", "from 1 to 12"),  # python SDK
    ("DOBD", "32", "from 1 to 31"),  # python SDK
    ("DOBD", "0", "from 1 to 31"),  # python SDK
    ("DOBY", "18", "from 1900 to 2100"),
    ("COUNTRY", "Narnia", "two-letter country code"),
    ("COUNTRY", "XX", "two-letter country code"),
    ("FN", "--", "nothing left"),
])
def test_unusable_values_name_the_rule_not_the_value(field: str, raw: str, rule: str) -> None:
    with pytest.raises(Unusable, match=rule) as info:
        normalize.prepare(field, raw)
    assert raw not in str(info.value)


@pytest.mark.parametrize(("field", "raw"), [("EMAIL", "   "), ("FN", None), ("PHONE", "")])
def test_empty_values_are_empty(field: str, raw: object) -> None:
    assert normalize.prepare(field, raw) == ""


def test_zip_keeps_all_characters_outside_the_us() -> None:
    assert normalize.prepare("ZIP", "12345-6789", Context(country="de")) == sha("123456789")
    assert normalize.prepare("ZIP", "12345-6789", Context(country="us")) == sha("12345")


@pytest.mark.parametrize("field", ["MADID", "EXTERN_ID"])
def test_madid_and_extern_id_are_not_hashed(field: str) -> None:
    raw = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    expected = raw.lower() if field == "MADID" else raw
    assert normalize.prepare(field, f"  {raw} ") == expected
    # Even a value that looks like a digest is sent as it is.
    digest = sha("x")
    assert normalize.prepare(field, digest) == digest


def test_never_hashes_twice() -> None:
    once = normalize.prepare("EMAIL", "john@example.com")
    assert normalize.prepare("EMAIL", once) == once
    assert normalize.prepare("EMAIL", once.upper()) == once
    assert normalize.prepare("PHONE", once) == once
    assert normalize.prepare("LN", f" {'a' * 64} ") == "a" * 64  # python SDK


def test_unknown_field_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'EMAIL_SHA256' is not one of EMAIL, PHONE"):
        normalize.normalize("EMAIL_SHA256", "x")
