"""The templates' filters: times, ages and JSON as the pages show them. JSON and text from
the outbox pass through the destinations' secrets (`ConsoleState.scrub`) on the way."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from crossdock.console.app import ConsoleState


def age(seconds: float | None) -> str:
    """A duration as an operator reads a lag: 42s, 7m 05s, 3h 12m, 2d 04h."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def install(env: jinja2.Environment, state: ConsoleState) -> None:
    """Add the filters to the console's template environment."""

    def ago(at: float | None) -> str:
        return "" if at is None else age(time.time() - at)

    def when(at: float | None) -> str:
        return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))

    def pretty(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(
            value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
        return state.scrub(text)

    env.filters.update(age=age, ago=ago, when=when, pretty=pretty, scrub=state.scrub)


def parse_when(value: str) -> float:
    """A point in time as the CLI's --since/--until take it: an ISO date or time (UTC unless
    it says otherwise), or a duration meaning that long ago (2h, 7d). ValueError otherwise."""
    from datetime import UTC, datetime

    from crossdock.config import parse_duration

    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        try:
            return time.time() - parse_duration(value)
        except (ValueError, TypeError):
            raise ValueError(
                f"{value!r} is neither an ISO date or time (2026-11-01, 2026-11-01T08:00Z) "
                "nor a duration ago (2h, 7d)") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
