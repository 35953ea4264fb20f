"""Key normalization, casing and value stringification.

A key normalizes once per destination and is memoized: the same few hundred attribute names
arrive millions of times.

Order: `normalize` (each character outside A-Z, a-z, 0-9 becomes "_"), then the underscore
strips, then `case`. Casing splits a key into words at non-alphanumeric characters and at
lower-to-upper and acronym boundaries ("userID" -> user, ID; "HTTPServer" -> HTTP, Server);
digits stay with the letters before them; letters outside A-Z never start a word. An empty
result means the key is dropped (and counted). Every rule is idempotent: normalizing a
normalized key changes nothing (a property test holds us to it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from crossdock.route.mapping_spec import KeysSpec

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
# "Small" characters are letters and digits other than A-Z (so "é" or "ß" extend a word).
# A word: an acronym before a capitalized word, an optional capital and small characters,
# or a run of capitals with its digits.
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][^\W_A-Z])|[A-Z]?[^\W_A-Z]+|[A-Z]+[0-9]*")
_MEMO_LIMIT = 50_000
# Joining words without a separator can make new boundaries ("a A" -> "AA" reads as one
# word), so camel and pascal casing repeat until the key stops changing.
_MAX_ROUNDS = 8


def _words(key: str) -> list[str]:
    return _WORDS.findall(key)


def _until_stable(step: Callable[[str], str]) -> Callable[[str], str]:
    def cased(key: str) -> str:
        for _ in range(_MAX_ROUNDS):
            again = step(key)
            if again == key:
                break
            key = again
        return key
    return cased


def _camel(key: str) -> str:
    return "".join(w.lower() if i == 0 else w.capitalize() for i, w in enumerate(_words(key)))


def _pascal(key: str) -> str:
    return "".join(w.capitalize() for w in _words(key))


_CASES: dict[str, Callable[[str], str]] = {
    "none": lambda k: k,
    "lower": str.lower,
    "upper": str.upper,
    "snake": lambda k: "_".join(w.lower() for w in _words(k)),
    "camel": _until_stable(_camel),
    "pascal": _until_stable(_pascal),
}


class KeyNormalizer:
    """Applies a KeysSpec to attribute names. An empty result means "drop this key"."""

    def __init__(self, spec: KeysSpec) -> None:
        self.spec = spec
        self.identity = (spec.normalize == "none" and not spec.strip_leading_underscores
                         and not spec.strip_trailing_underscores and spec.case == "none")
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
        if self.spec.strip_trailing_underscores:
            key = key.rstrip("_")
        return self._case(key)
