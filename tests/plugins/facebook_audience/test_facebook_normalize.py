"""Meta's normalization rules, field by field, with SHA-256 computed here from the expected
normalized text (so a wrong rule and a wrong hash both fail)."""

from __future__ import annotations

import hashlib

import pytest

from crossdock.plugins.facebook_audience import normalize


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize(("field", "raw", "expected"), [
    ("EMAIL", "  John.Doe@Example.COM ", "john.doe@example.com"),
    ("EMAIL", "ÉLODIE@exemple.fr", "élodie@exemple.fr"),
    ("PHONE", "+1 (650) 555-1212", "16505551212"),
    ("PHONE", "0044 20 7946 0958", "442079460958"),
    ("PHONE", "001-650-555-1212", "16505551212"),
    ("GEN", "Female", "f"),
    ("GEN", " M ", "m"),
    ("DOBY", "1990", "1990"),
    ("DOBM", "7", "07"),
    ("DOBM", 12, "12"),
    ("DOBD", "4", "04"),
    ("FN", "Mary-Ann", "maryann"),
    ("FN", "  José ", "josé"),
    ("LN", "O'Neil", "oneil"),
    ("FI", "Zoë", "z"),
    ("CT", "New York", "newyork"),
    ("CT", "St. Louis 2", "stlouis"),
    ("ST", "California", "ca"),
    ("ST", "NY", "ny"),
    ("ST", "Île-de-France", "îledefrance"),
    ("ZIP", "94025-1234", "94025"),
    ("ZIP", "SW1A 1AA", "sw1a1aa"),
    ("COUNTRY", "US", "us"),
    ("COUNTRY", "United States", "us"),
    ("COUNTRY", "United Kingdom", "gb"),
])
def test_hashed_fields(field: str, raw: object, expected: str) -> None:
    assert normalize.normalize(field, raw) == expected
    assert normalize.prepare(field, raw) == sha(expected)


@pytest.mark.parametrize(("field", "raw"), [
    ("EMAIL", "not-an-email"), ("PHONE", "12"), ("GEN", "x"), ("DOBM", "13"),
    ("DOBD", "32"), ("DOBY", "19"), ("COUNTRY", "Narnia"), ("EMAIL", "   "), ("FN", None),
])
def test_unusable_values_are_empty_not_hashed(field: str, raw: object) -> None:
    assert normalize.prepare(field, raw) == ""


def test_phone_with_default_country_code() -> None:
    # A national number loses its trunk zero and gains the configured calling code ...
    assert normalize.prepare("PHONE", "020 7946 0958", default_phone_country_code="44") == \
        sha("442079460958")
    # ... but an international one keeps its own.
    assert normalize.prepare("PHONE", "+1 650 555 1212", default_phone_country_code="44") == \
        sha("16505551212")


def test_zip_keeps_all_characters_outside_the_us() -> None:
    assert normalize.prepare("ZIP", "12345-6789", country_code="de") == sha("123456789")
    assert normalize.prepare("ZIP", "12345-6789", country_code="us") == sha("12345")


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


def test_unknown_field_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'EMAIL_SHA256' is not one of EMAIL, PHONE"):
        normalize.normalize("EMAIL_SHA256", "x")
