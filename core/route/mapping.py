"""Shaping one attribute map (event properties or user traits) for a destination:

    filter (original names) -> reserved renames -> key normalization -> stringify -> limit

Limits drop deterministically: the first N keys in sorted order of their final names are kept.
Keys that normalize to nothing, and values that are null, are dropped too; every dropped key
is counted so `crossdock status` can show it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crossdock.route.normalize import KeyNormalizer, stringify


@dataclass
class AttributeShaper:
    allowed: Callable[[str], bool]
    normalize: KeyNormalizer | None
    reserved: dict[str, str]
    stringify: bool
    limit: int | None
    string_length: int | None

    def shape(self, attributes: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """(shaped attributes, how many were dropped by normalization, nulls or the limit)."""
        out: dict[str, Any] = {}
        dropped = 0
        for key, value in attributes.items():
            if not self.allowed(key):
                continue
            name = self.reserved.get(key)
            if name is None:
                name = self.normalize(key) if self.normalize is not None else key
                if not name:
                    dropped += 1
                    continue
            if self.stringify:
                value = stringify(value)
                if value is None:
                    dropped += 1
                    continue
            if self.string_length is not None and isinstance(value, str):
                value = value[: self.string_length]
            out[name] = value
        if self.limit is not None and len(out) > self.limit:
            keep = sorted(out)[: self.limit]
            dropped += len(out) - self.limit
            out = {k: out[k] for k in keep}
        return out, dropped
