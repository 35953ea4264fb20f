"""The shape any message may have, whichever way it arrives: nested at most MAX_DEPTH levels,
and every number finite.

    loads(text)                  JSON text to Python, at any depth, without a RecursionError
    shape_problems(message)      ["properties.a.a.…: nested deeper than 64 levels", ...]

Depth: a message nested 256 levels deep could be parsed but not stored (pydantic refuses to
serialize past 255 levels), and around 1,000 levels `json.loads` raises RecursionError; either
failed the whole request or batch. `parse_message` refuses the one message by the path where
it goes too deep, and `loads` parses text of any depth: when the standard parser runs out of
stack, containers nested past twice the limit are cut to `[]` first, which keeps them past the
limit, so the message holding them is still refused by name and the rest of a batch is kept.

Numbers: JSON has no NaN or Infinity, and a number such as 1e400 overflows a double to
infinity; stored, each became `null` without a word. `loads` reads `NaN` and `Infinity`
literals as floats so that they, too, are refused by the field that holds them.

Speed: `loads` tries orjson first (3-4 times faster than the standard parser on a batch) and
reads with the standard parser whatever orjson refuses (NaN and Infinity literals, numbers
beyond a double, lone surrogates, a byte order mark, nesting past 1,024 levels, and every
malformed text, whose error then names the line and column as before). orjson reads an
integer beyond 64 bits as a float without a word, so text holding a run of 19 or more digits
goes to the standard parser directly, which keeps such an integer exact.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

#: how deep objects and arrays may nest in a message, the message object being level 1
MAX_DEPTH = 64
DEPTH_RULE = f"nested deeper than {MAX_DEPTH} levels (objects and arrays)"
FINITE_RULE = ("must be a finite number (NaN, Infinity and numbers beyond a double's range, "
               "such as 1e400, are refused)")
#: containers nested past this depth of a document are cut by `loads` (see the docstring)
_CUT_DEPTH = 2 * MAX_DEPTH
#: path components shown of a too-deep path: its start and its end
_SHOWN_HEAD = 6
_SHOWN_TAIL = 2
# A JSON string (its escapes included) or a bracket; strings are matched so that brackets
# inside them are not counted.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


#: a run of digits that may be an integer orjson cannot hold (2**64 has 20 digits; 19 is the
#: first length that can pass 2**63, orjson's limit for a negative one), looked for as a run
#: of zeros once every digit is a zero: a C pass over the text, where a regular expression
#: took longer than parsing
_LONG_DIGITS = b"0" * 19
_DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)


def loads(text: str | bytes) -> Any:
    """`json.loads`, except that no depth of nesting raises RecursionError (see the module
    docstring). Raises JSONDecodeError and UnicodeDecodeError as `json.loads` does."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if raw.translate(_DIGITS_AS_ZEROS).find(_LONG_DIGITS) < 0:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # read (or refused, by line and column) as the standard parser reads it
    try:
        return json.loads(text)
    except RecursionError:
        pass
    if isinstance(text, bytes):
        text = text.decode(json.detect_encoding(text))
    return json.loads(_cut_deep(text, _CUT_DEPTH))


def _cut_deep(text: str, keep: int) -> str:
    """`text` with every object or array that opens below depth `keep` replaced by `[]`."""
    out: list[str] = []
    depth = 0
    done = 0  # text[:done] is in `out`
    cut_from = -1
    for match in _STRING_OR_BRACKET.finditer(text):
        bracket = match.group()
        if bracket[0] == '"':
            continue
        if bracket in "[{":
            depth += 1
            if depth == keep + 1:
                cut_from = match.start()
            continue
        if depth == keep + 1 and cut_from >= 0:
            out += [text[done:cut_from], "[]"]
            done = match.end()
            cut_from = -1
        depth -= 1
    # Unclosed at the end: the text is cut there, and json.loads says it ended too soon.
    out.append(text[done:cut_from] if cut_from >= 0 else text[done:])
    return "".join(out)


def shape_problems(value: Any, path: str = "") -> list[str]:
    """Where `value` (a message, or any JSON-like value) breaks the rules, as "path: rule"."""
    if isinstance(value, dict | list | tuple):
        if _fits(value, MAX_DEPTH):
            return []
        problems: list[str] = []
        _check(value, MAX_DEPTH, [path] if path else [], problems)
        return problems
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path or 'value'}: {FINITE_RULE}, got {value}"]
    return []


_PLAIN = frozenset({str, int, bool, type(None)})


def _fits(container: Any, room: int, isfinite: Any = math.isfinite) -> bool:
    """Whether a container breaks no rule: `_check` without the bookkeeping of paths, run on
    every message (1.7 us for a typical track message, 60 % of parsing it), so the common
    types are tested by identity first."""
    plain_dict = type(container) is dict
    for item in container.values() if plain_dict or isinstance(container, dict) else container:
        kind = type(item)
        if kind is str:
            continue
        if kind is dict or kind is list:
            if room == 1 or not _fits(item, room - 1):
                return False
        elif kind is float:
            if not isfinite(item):
                return False
        elif kind not in _PLAIN:  # subclasses, tuples: what the Python API may hand in
            if isinstance(item, dict | list | tuple):
                if room == 1 or not _fits(item, room - 1):
                    return False
            elif isinstance(item, float) and not isfinite(item):
                return False
    return True


def _check(container: dict[Any, Any] | list[Any] | tuple[Any, ...], room: int,
           path: list[Any], problems: list[str]) -> None:
    """Every problem of a container that may hold `room - 1` more levels below itself."""
    items = container.items() if isinstance(container, dict) else enumerate(container)
    for key, item in items:
        if isinstance(item, dict | list | tuple):
            path.append(key)
            if room == 1:
                problems.append(f"{_dotted(path)}: {DEPTH_RULE}")
            else:
                _check(item, room - 1, path, problems)
            path.pop()
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"{_dotted([*path, key])}: {FINITE_RULE}, got {item}")


def _dotted(path: list[Any]) -> str:
    parts = [str(part) for part in path]
    if len(parts) > _SHOWN_HEAD + _SHOWN_TAIL + 1:
        hidden = len(parts) - _SHOWN_HEAD - _SHOWN_TAIL
        parts = [*parts[:_SHOWN_HEAD], f"…{hidden} more…", *parts[-_SHOWN_TAIL:]]
    return ".".join(parts)
