"""The data filter: allow and deny lists of names, with globs (`*`, `?`, `[abc]`).

`deny` always wins. Without an `allow` list a name passes when the destination forwards
everything by default, and never when it forwards nothing until told to (SessionM). Matching
is case sensitive, on the names as received (before normalization and the event-name map).
Patterns compile once into one regular expression per list; answers are memoized.
"""

from __future__ import annotations

import fnmatch
import re

from crossdock.config import ListFilter

_MEMO_LIMIT = 50_000


class _Names:
    """A set of exact names and glob patterns."""

    def __init__(self, names: list[str]) -> None:
        self.exact = frozenset(n for n in names if not _is_glob(n))
        globs = [n for n in names if _is_glob(n)]
        self.pattern = _compile(globs)
        # Patterns that name something: every glob except the catch-all "*".
        self.naming = _compile([g for g in globs if g.strip("*")])

    def __contains__(self, name: str) -> bool:
        return name in self.exact or (self.pattern is not None and bool(
            self.pattern.match(name)))

    def names(self, name: str) -> bool:
        """Listed by its own name or by a pattern narrower than "*"."""
        return name in self.exact or (self.naming is not None and bool(
            self.naming.match(name)))


def _compile(globs: list[str]) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")


class Matcher:
    """Decides whether one category's names (events, attributes, identities) may pass."""

    def __init__(self, filt: ListFilter, forward_by_default: bool) -> None:
        self.allow = None if filt.allow is None else _Names(filt.allow)
        self.deny = _Names(filt.deny)
        self.default = forward_by_default
        self.everything = self.allow is None and not filt.deny and forward_by_default
        self._memo: dict[str, bool] = {}

    def explicitly_allowed(self, name: str) -> bool:
        """Named by the allow list (exactly or by a glob other than a bare "*") and not
        denied: for opt-in names like session_end, which "allow everything" must not reach."""
        return self.allow is not None and self.allow.names(name) and name not in self.deny

    def __call__(self, name: str) -> bool:
        if self.everything:
            return True
        found = self._memo.get(name)
        if found is None:
            if name in self.deny:
                found = False
            elif self.allow is None:
                found = self.default
            else:
                found = name in self.allow
            if len(self._memo) < _MEMO_LIMIT:
                self._memo[name] = found
        return found
