"""Durations as operators write them in crossdock.yaml and on the command line: a number of
seconds, or "90s", "45m", "3d". A leaf module: the config models, the audience and export
schedules, the functions' limits and the CLI's --since all read durations, and none of them
may import another for it."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "90s", "45m", "3d"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"must be a duration in seconds or like '90s', '45m', '3d', got {value!r}")
