"""Key normalization, casing and value stringification.

A key normalizes once per destination and is memoized: the same few hundred attribute names
arrive millions of times.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from crossdock.route.mapping_spec import KeysSpec

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MEMO_LIMIT = 50_000


def _words(key: str) -> list[str]:
    return _WORDS.findall(key)


_CASES: dict[str, Callable[[str], str]] = {
    "none": lambda k: k,
    "lower": str.lower,
    "upper": str.upper,
    "snake": lambda k: "_".join(w.lower() for w in _words(k)),
    "camel": lambda k: "".join(
        w.lower() if i == 0 else w.capitalize() for i, w in enumerate(_words(k))
    ),
    "pascal": lambda k: "".join(w.capitalize() for w in _words(k)),
}


class KeyNormalizer:
    """Applies a KeysSpec to attribute names. An empty result means "drop this key"."""

    def __init__(self, spec: KeysSpec) -> None:
        self.spec = spec
        self.identity = (spec.normalize == "none" and not spec.strip_leading_underscores
                         and spec.case == "none")
        self._case = _CASES[spec.case]
        self._memo: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        if self.identity:
            return key
        found = self._memo.get(key)
        if found is None:
            found = self._normalize(key)
            if len(self._memo) < _MEMO_LIMIT:
                self._memo[key] = found
        return found

    def _normalize(self, key: str) -> str:
        if self.spec.normalize == "non_alphanumeric_to_underscore":
            key = _NON_ALNUM.sub("_", key)
        if self.spec.strip_leading_underscores:
            key = key.lstrip("_")
        return self._case(key)


def stringify(value: Any) -> str | None:
    """A value as the string destinations like SessionM want; None for "drop it"."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
