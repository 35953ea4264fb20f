"""Dates of birth in the forms people send, for destinations that want their parts (Meta's
DOBY / DOBM / DOBD, Mailchimp's BIRTHDAY "MM/DD"). Part of the plugin API: one reading for
every destination, so a date one of them takes the others take too.

    parse_date("1990-07-04T00:00:00+0200")  -> (1990, 7, 4)    ISO date, time ignored
    parse_date("2/16/1997")                 -> (1997, 2, 16)   Meta's own example, M/D/YYYY
    parse_date("16-2-1997")                 -> (1997, 2, 16)   D-M-YYYY: 16 cannot be a month
    parse_date("3/2/1997")                  -> (1997, 3, 2)    ambiguous: month first ...
    parse_date("3/2/1997", "day_first")     -> (1997, 2, 3)    ... unless the operator says
    parse_date("February 16, 1997")         -> (1997, 2, 16)   English month names
    parse_date("19970216")                  -> (1997, 2, 16)   YYYYMMDD

The numeric rules are those of Meta's parameter builder (facebook/capi-param-builder,
`dobUtil.js`): the digit groups are read in order; a group above 31 is the year; a number
above 12 cannot be the month; when both readings are possible the month comes first. A year
in the middle ("16 1997 2") or of two digits ("2/16/97") is refused rather than guessed, and
the date must exist (no 30 February).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

#: which of two numbers that could both be the month is the month ("3/2/1997")
DateOrder = Literal["month_first", "day_first"]

MIN_YEAR, MAX_YEAR = 1900, 2100

MONTHS = {name: n for n, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
    ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
    ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
    ("december", "dec"),
), start=1) for name in names}

_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:$|[t ])")  # matched in lower case
_DIGITS = re.compile(r"\d+")
_WORDS = re.compile(r"[a-z]+")


class DateError(ValueError):
    """A text that is not a date of birth; the message says which rule it broke."""


def month_number(text: str) -> int | None:
    """1-12 for a month name or abbreviation ("July", "jul.", "Sept"), else None."""
    return MONTHS.get(text.strip().lower().rstrip("."))


def parse_date(text: str, order: DateOrder = "month_first") -> tuple[int, int, int]:
    """(year, month, day) of a date of birth, or DateError."""
    text = text.strip().lower()
    if match := _ISO.match(text):
        year, month, day = (int(g) for g in match.groups())
        return _checked(year, month, day)
    groups = _DIGITS.findall(text)
    named = [n for word in _WORDS.findall(text) if (n := month_number(word)) is not None]
    if named:
        return _with_month_name(named[0], groups)
    if len(groups) == 1 and len(groups[0]) == 8:
        value = groups[0]
        return _checked(int(value[:4]), int(value[4:6]), int(value[6:]))
    if len(groups) != 3:
        raise DateError("a date of birth has a day, a month and a four-digit year")
    first, second, third = (int(g) for g in groups)
    if len(groups[0]) == 4:  # YYYY-M-D, or YYYY-D-M when the middle one cannot be a month
        return _checked(first, *((third, second) if second > 12 else (second, third)))
    if len(groups[2]) != 4:
        raise DateError("the year must have four digits, first or last")
    if first > 12:
        month, day = second, first
    elif second > 12 or order == "month_first":
        month, day = first, second
    else:
        month, day = second, first
    return _checked(third, month, day)


def _with_month_name(month: int, groups: list[str]) -> tuple[int, int, int]:
    years = [int(g) for g in groups if len(g) == 4]
    days = [int(g) for g in groups if len(g) <= 2]
    if len(years) != 1 or len(days) != 1:
        raise DateError("a date with a month name needs a day and a four-digit year")
    return _checked(years[0], month, days[0])


def _checked(year: int, month: int, day: int) -> tuple[int, int, int]:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise DateError(f"the year must be from {MIN_YEAR} to {MAX_YEAR}")
    try:
        dt.date(year, month, day)
    except ValueError as exc:
        raise DateError(f"no such day ({exc})") from None
    return year, month, day


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_millis(value: object) -> int | None:
    """Milliseconds since the epoch of an ISO-8601 time as routed payloads carry them
    (`timestamp`, `sessionStart`; one without a zone is UTC), for APIs that take times as
    numbers (Amplitude's `time` and `session_id`); None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    # Integer arithmetic on the timedelta: a float timestamp() * 1000 can be off by one.
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)
