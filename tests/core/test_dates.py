"""Dates of birth in the forms people send (crossdock.dates), read as Meta's parameter builder
reads them: vectors marked "param builder" are from facebook/capi-param-builder,
client_js/shared/tests/dobUtil.test.js."""

from __future__ import annotations

import pytest

from crossdock.dates import DateError, epoch_millis, month_number, parse_date


@pytest.mark.parametrize(("raw", "expected"), [
    ("1990-07-04", (1990, 7, 4)),
    ("1990-05-17T00:00:00+0200", (1990, 5, 17)),  # the user API's birthDate
    ("2/16/1997", (1997, 2, 16)),  # Meta's example
    ("02/16/1997 (mm/dd/yyyy)", (1997, 2, 16)),  # param builder
    ("16-2-1997 (dd-mm-yyyy)", (1997, 2, 16)),  # param builder
    ("31-12-1990", (1990, 12, 31)),  # param builder
    ("16.02.1997", (1997, 2, 16)),
    ("13-02-1990", (1990, 2, 13)),  # param builder: 13 cannot be a month
    ("02-13-1990", (1990, 2, 13)),  # param builder
    ("05-03-1995", (1995, 5, 3)),  # param builder: ambiguous, the month first
    ("1990.12.31", (1990, 12, 31)),  # param builder
    ("1990_12.31", (1990, 12, 31)),  # param builder
    ("19901231", (1990, 12, 31)),  # param builder
    ("February 16, 1997", (1997, 2, 16)),
    ("16 Feb 1997", (1997, 2, 16)),
    ("16-sept-1997", (1997, 9, 16)),
])
def test_dates_of_birth_in_the_forms_people_send(raw: str, expected: tuple[int, int, int]
                                                 ) -> None:
    assert parse_date(raw) == expected


def test_the_operator_chooses_how_an_ambiguous_date_reads() -> None:
    assert parse_date("3/2/1997") == (1997, 3, 2)
    assert parse_date("3/2/1997", "day_first") == (1997, 2, 3)
    # An unambiguous date reads the same either way.
    assert parse_date("16/2/1997", "month_first") == parse_date("16/2/1997", "day_first")


@pytest.mark.parametrize(("raw", "rule"), [
    ("2/16/97", "four digits"),
    ("30/02/1990", "no such day"),
    ("1990", "a day, a month and a four-digit year"),
    ("16 1997 2", "four digits, first or last"),
    ("1850-01-01", "from 1900 to 2100"),
    ("July 4th", "a day and a four-digit year"),
])
def test_dates_that_are_not_dates_of_birth_name_the_rule(raw: str, rule: str) -> None:
    with pytest.raises(DateError, match=rule):
        parse_date(raw)


@pytest.mark.parametrize(("raw", "expected"), [
    ("January", 1), ("jan", 1), ("Jan.", 1), ("SEPT", 9), ("may", 5), ("13", None),
    ("Janvier", None),
])
def test_month_names(raw: str, expected: int | None) -> None:
    assert month_number(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-05-01T12:00:00.250Z", 1714564800250),
    ("2024-05-01T14:00:00.250+02:00", 1714564800250),
    ("2024-05-01T12:00:00.2509", 1714564800250),      # no zone: UTC; under a ms: cut
    ("1970-01-01T00:00:00Z", 0),
    ("yesterday", None), ("", None), (1714564800, None), (None, None),
])
def test_epoch_millis(raw: object, expected: int | None) -> None:
    assert epoch_millis(raw) == expected
