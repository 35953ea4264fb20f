"""The shape of a mapping (mappings/<plugin>.yaml merged with the operator's overrides)."""

from __future__ import annotations

from typing import Any


def mapping_problems(mapping: dict[str, Any], path: str) -> list[str]:
    """Every problem in a merged mapping, as "path.key: message" (empty when valid)."""
    return []
