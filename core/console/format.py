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

