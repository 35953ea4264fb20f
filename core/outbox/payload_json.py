"""Outbox payloads to and from JSON text, fast: orjson, with the standard library behind it.

Encoding every row's payload is the largest single cost of accepting a message, and orjson
does it several times faster than `json` (figures: docs/benchmarks.md). Where the two disagree
the standard library decides, so callers see the text or the error `json` would give:

- anything orjson refuses (integers beyond 64 bits, lone surrogates, types neither knows,
  circular references) is encoded by `json`, which then succeeds or raises its usual error;
- a lone surrogate (legal in a JSON string, `"\\ud800"`, but not Unicode text) becomes
  U+FFFD, as many JSON readers take it (Go's encoding/json, for one): raw it is not UTF-8,
  so no database would take the text and no plugin could send it (they write UTF-8 bodies);
  kept as the escape, it would fail every delivery of the batch it was leased in;
- NUL is written as the escape `\\u0000` (never raw), so the text fits a SQLite or
  PostgreSQL `text` column and decodes back to the same string;
- NaN and ±Infinity become `null`, which is valid JSON (`json` wrote the non-standard `NaN`,
  which PostgreSQL's jsonb rejects);
- decoding goes through `json` whenever orjson would differ: text it rejects (such as a `NaN`
  written by an older version) and integers of 19 digits or more (orjson turns those beyond
  64 bits, -9223372036854775809 and below or 18446744073709551616 and above, into
  floats; `json` keeps them exact).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS
_FALLBACK = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A run of 19+ digits may be an integer orjson would round to a float; decoding such a batch
# with `json` keeps it exact (a false alarm, e.g. digits inside a string, only costs speed).
# Found by mapping digits to NUL, which JSON text never holds raw: ~20x faster than a regex.
_DIGITS_TO_NUL = bytes.maketrans(b"0123456789", b"\0" * 10)
_LONG_DIGITS = b"\0" * 19
#: a payload as stored: its text, or the UTF-8 bytes of it
PayloadText = TypeVar("PayloadText", str, bytes)


def encode_payload(payload: Any) -> str:
    """Compact JSON text (non-ASCII kept as is, non-string keys as strings) that is always
    valid UTF-8."""
    try:
        return orjson.dumps(payload, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        text: str = _FALLBACK(payload)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


def decode_payloads(payloads: Sequence[PayloadText]) -> list[Any]:
    """Each payload decoded, or the ValueError saying why it is not JSON. One decode of the
    whole batch is much cheaper than one per row; a bad row sends us the slow way. The
    payloads may be the UTF-8 bytes of the text (the SQLite lease reads them so: no str to
    build for each and encode again; bytes that are not UTF-8 are a malformed row)."""
    if not payloads:
        return []
    first = payloads[0]
    if isinstance(first, bytes):
        encoded = b"[" + b",".join(payloads) + b"]"
    else:
        encoded = ("[" + ",".join(payloads) + "]").encode("utf-8", "surrogatepass")
    if _LONG_DIGITS not in encoded.translate(_DIGITS_TO_NUL):
        try:
            decoded = orjson.loads(encoded)
            if len(decoded) == len(payloads):
                return list(decoded)
        except orjson.JSONDecodeError:
            pass
    try:
        decoded = json.loads(encoded.decode("utf-8", "surrogatepass"))
        if len(decoded) == len(payloads):
            return list(decoded)
    except ValueError:
        pass
    out: list[Any] = []
    for payload in payloads:
        try:
            out.append(json.loads(payload if isinstance(payload, str) else payload.decode()))
        except ValueError as exc:
            out.append(exc)
    return out
