"""The data filter: allow and deny lists of names, with globs (`*`, `?`, `[abc]`).

`deny` always wins. Without an `allow` list a name passes when the destination forwards
everything by default, and never when it forwards nothing until told to (SessionM). Matching
is case sensitive, on the names as received (before normalization and the event-name map).
A user attribute the profile store keeps under another name (mParticle's `$FirstName` as
`firstName`, Segment's `first_name` too) is matched by either name: operators type the names
their SDKs send. Patterns compile once into one regular expression per list; answers are
memoized.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from crossdock.config import AttributeRulesConfig, FilterConfig, ListFilter
from crossdock.profiles.attributes import IDENTITY_TYPES, STORED_NAMES, SYSTEM_ATTRIBUTES

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


def _both_names(names: list[str]) -> list[str]:
    # Each name and the one the profile store keeps it under: the message alone (no store)
    # carries the name as sent, the profile the stored one.
    return list(dict.fromkeys(n for name in names for n in (name, STORED_NAMES.get(name, name))))


def with_stored_names(filt: ListFilter) -> ListFilter:
    """A user-attribute filter whose every name also matches the name the profile store keeps
    the attribute under (`$FirstName` -> `firstName`)."""
    return ListFilter(allow=None if filt.allow is None else _both_names(filt.allow),
                      deny=_both_names(filt.deny))


def _literal_head(name: str) -> str:
    """The part of a name before its first glob character (all of it for a plain name)."""
    return re.split(r"[*?\[]", name, maxsplit=1)[0]


def _attribute_never_stored(name: str, rules: AttributeRulesConfig) -> str | None:
    """Why no stored user attribute can ever match `name` (a name or a glob), or None."""
    if "\x00" in name:
        return "holds NUL (\\u0000), which no attribute name may"
    glob = _is_glob(name)
    stored = name if glob else STORED_NAMES.get(name, name)
    head = _literal_head(stored)
    if len(head) > rules.max_name_length:
        return (f"is longer than {rules.max_name_length} characters, and no longer name is "
                "stored")
    if stored in SYSTEM_ATTRIBUTES:
        return None
    for prefix in rules.reserved_prefixes:
        # A glob can match only reserved names when its literal start is reserved.
        if head.startswith(prefix):
            return (f"starts with the reserved prefix {prefix!r}: such attributes are "
                    "ignored, never stored (profiles.attributes.reserved_prefixes)")
    return None


def filter_warnings(filt: FilterConfig, rules: AttributeRulesConfig,
                    always_identities: Sequence[str] = ()) -> list[str]:
    """Every name of a destination's user attribute and identity filters that can never
    match anything, as "filter.<category>.<list>: ..." (for `crossdock validate`)."""
    warnings: list[str] = []
    known = {*IDENTITY_TYPES, "profileId", *always_identities}
    for category, lists in (("user_attributes", filt.user_attributes),
                            ("identities", filt.identities)):
        for which, names in (("allow", lists.allow or []), ("deny", lists.deny)):
            for name in names:
                if category == "user_attributes":
                    why = _attribute_never_stored(name, rules)
                elif _is_glob(name) or name in known:
                    why = None
                else:
                    why = ("is no identity type: a profile's identities are "
                           f"{', '.join(IDENTITY_TYPES)} (profileId where the mapping "
                           "forwards it)")
                if why is not None:
                    warnings.append(f"filter.{category}.{which}: {name!r} can never match: "
                                    f"it {why}")
    return warnings
