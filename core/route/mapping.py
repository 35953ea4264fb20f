"""Shaping one attribute map (event properties or user traits) for a destination:

    filter (original names) -> reserved renames -> key normalization -> stringify -> limit
    -> string length

- A reserved name is renamed to its exact target and is not normalized.
- A key that normalizes to nothing is dropped.
- When two keys end up with one name, a reserved rename wins, else the key whose original
  name sorts first; the other is dropped.
- A null value is dropped when values are stringified.
- Limits keep the first N keys in sorted order of their final names (plain code-point order);
  the rest are dropped. The kept keys keep their original order.
- Strings longer than `string_length` are cut (counted apart: the value is still sent).

Every dropped key is counted so `crossdock status` can show it; what the filter removes on
purpose is not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossdock.kit import stringify
from crossdock.route.normalize import KeyNormalizer

#: (attributes, how many keys were dropped, how many strings were cut)
Shaped = tuple[dict[str, Any], int, int]


@dataclass
class AttributeShaper:
    allowed: Callable[[str], bool]
    #: True when `allowed` passes every name (so the filter loop is skipped)
    allows_everything: bool
    normalize: KeyNormalizer | None
    reserved: dict[str, str]
    stringify: bool
    limit: int | None
    string_length: int | None
    passthrough: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.normalize is not None and self.normalize.identity:
            self.normalize = None
        # Nothing to do at all: the attributes go as they are (not even copied; the payload
        # is serialized, never mutated).
        self.passthrough = (self.allows_everything and self.normalize is None
                            and not self.reserved and not self.stringify
                            and self.limit is None and self.string_length is None)

    def shape(self, attributes: dict[str, Any]) -> Shaped:
        """The shaped attributes and how many were dropped or truncated."""
        if self.passthrough or not attributes:
            return attributes, 0, 0
        if self.normalize is None and not self.reserved:
            out = self._filter_only(attributes)
            dropped = 0
        else:
            out, dropped = self._rename(attributes)
        if self.stringify:
            strings = {k: stringify(v) for k, v in out.items()}
            out = {k: v for k, v in strings.items() if v is not None}
            dropped += len(strings) - len(out)
        if self.limit is not None and len(out) > self.limit:
            keep = set(sorted(out)[: self.limit])
            dropped += len(out) - self.limit
            out = {k: v for k, v in out.items() if k in keep}
        truncated = 0
        if self.string_length is not None:
            n = self.string_length
            for k, v in out.items():
                if isinstance(v, str) and len(v) > n:
                    out[k] = v[:n]
                    truncated += 1
        return out, dropped, truncated

    def _filter_only(self, attributes: dict[str, Any]) -> dict[str, Any]:
        if self.allows_everything:
            return dict(attributes)
        allowed = self.allowed
        return {k: v for k, v in attributes.items() if allowed(k)}

    def _rename(self, attributes: dict[str, Any]) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        # final name -> (not reserved, original name): the smaller claim wins a collision
        claims: dict[str, tuple[bool, str]] = {}
        dropped = 0
        allowed, reserved, normalize = self.allowed, self.reserved, self.normalize
        for key, value in attributes.items():
            if not self.allows_everything and not allowed(key):
                continue
            name = reserved.get(key)
            claim = (name is None, key)
            if name is None:
                name = normalize(key) if normalize is not None else key
                if not name:
                    dropped += 1
                    continue
            held = claims.get(name)
            if held is not None:
                dropped += 1
                if held <= claim:
                    continue
            claims[name] = claim
            out[name] = value
        return out, dropped
