"""The templates' filters: times, ages and JSON as the pages show them. JSON and text from
the outbox pass through the destinations' secrets (`ConsoleState.scrub`) on the way."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import jinja2

from crossdock.views import age

if TYPE_CHECKING:
    from crossdock.console.app import ConsoleState


def spark_points(counts: list[int], width: int, height: int) -> str:
    """Counts (oldest first) as an SVG polyline's points in a width x height box: the
    highest touches the top, zero lies on the bottom (the console's small charts)."""
    step = width / max(1, len(counts) - 1)
    top = max(1, max(counts, default=0))
    return " ".join(f"{i * step:.1f},{height - count / top * (height - 2) - 1:.1f}"
                    for i, count in enumerate(counts))


def install(env: jinja2.Environment, state: ConsoleState) -> None:
    """Add the filters to the console's template environment."""

    def ago(at: float | None) -> str:
        return "" if at is None else age(time.time() - at)

    def duration(seconds: float | None) -> str:
        return "" if seconds is None else age(seconds)

    def when(at: float | None) -> str:
        return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))

    def pretty(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(
            value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
        return state.scrub(text)

    env.filters.update(age=duration, ago=ago, when=when, pretty=pretty, scrub=state.scrub)

