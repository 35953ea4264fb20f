"""An audience as the operator writes it, and its condition compiled once.

    audiences:
      high_value:
        condition: lifetime_value > 500 and country == "NO"
        destinations: [fb-high-value, mailchimp-main]
        schedule: 1h            # or a crontab line: "0 3 * * *"; optional
        sync_on_change: true    # default

The condition is a Jinja2 expression run in Jinja2's sandbox (it cannot reach Python
internals) against one profile's attributes, system and custom, by name. An attribute the
profile does not have is *undefined*, and touching an undefined value in any way other than
`is defined` / `is undefined` makes the whole condition false: a person with no
`lifetime_value` is not in `lifetime_value > 500`, nor in `lifetime_value <= 500`. A value
of the wrong type (`"abc" > 500`) is false too, and logged.

crossdock.config imports this module (AudienceConfig): it imports crossdock.config only for
type checking.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crossdock.durations import parse_duration

if TYPE_CHECKING:
    from crossdock.config import ConfiguredDestination

log = logging.getLogger("crossdock.audiences")

#: audience names appear in tag names, timer names and logs: keep them plain
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
AUDIENCE_ENTERED = "audience_entered"
AUDIENCE_EXITED = "audience_exited"

_ENV = SandboxedEnvironment(undefined=StrictUndefined)


class ConditionError(ValueError):
    """A condition that is not a valid Jinja2 expression."""


def compile_condition(condition: str) -> Callable[..., Any]:
    """The condition as a callable of attribute keyword arguments; ConditionError when the
    text is not an expression."""
    if not condition.strip():
        raise ConditionError("must not be empty (e.g. 'lifetime_value > 500')")
    try:
        return _ENV.compile_expression(condition, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ConditionError(f"not a valid Jinja2 expression: {exc.message}") from exc


@dataclass(frozen=True)
class Schedule:
    """When the full sync runs: every `seconds`, or at the times of a crontab line."""

    text: str
    seconds: float | None = None
    cron: Any = None  # apscheduler CronTrigger

    def next_after(self, last: float) -> float:
        """The first run time after `last` (seconds since the epoch)."""
        if self.seconds is not None:
            return last + self.seconds
        start = datetime.fromtimestamp(last, UTC)
        fire = self.cron.get_next_fire_time(None, start)
        # get_next_fire_time may return `start` itself when it is a fire time.
        if fire is not None and fire.timestamp() <= last:
            from datetime import timedelta

            fire = self.cron.get_next_fire_time(None, start + timedelta(seconds=1))
        return float("inf") if fire is None else float(fire.timestamp())


def parse_schedule(value: str) -> Schedule:
    """A duration ("90s", "15m", "1h", "1d", or seconds) or a 5-field crontab line (UTC)."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        pass
    else:
        if seconds < 1:
            raise ValueError(f"must be at least 1s, got {value!r}")
        return Schedule(str(value), seconds=seconds)
    from apscheduler.triggers.cron import CronTrigger

    try:
        return Schedule(str(value), cron=CronTrigger.from_crontab(str(value), timezone=UTC))
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"must be a duration like '1h' / '15m' or a crontab line like '0 3 * * *' "
            f"(minute hour day month weekday, UTC), got {value!r} ({exc})"
        ) from exc


def check_schedule(value: Any) -> str | None:
    """A `schedule:` setting (audiences, snapshot exports) as text, checked: None, a duration
    or a crontab line (a number is seconds)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration like '1h' or a crontab line like '0 3 * * *'")
    parse_schedule(value)
    return value


class AudienceConfig(BaseModel):
    """One audience under `audiences:` in crossdock.yaml (docs/audiences.md)."""

    model_config = ConfigDict(extra="forbid")

    condition: str = Field(description="sandboxed Jinja2 expression over profile attributes")
    destinations: list[str] = Field(
        min_length=1, description="destination names that add and remove the members")
    schedule: str | None = Field(
        default=None, description="full-sync interval ('1h') or crontab line ('0 3 * * *')")
    sync_on_change: bool = True

    @field_validator("condition")
    @classmethod
    def _condition(cls, value: str) -> str:
        compile_condition(value)
        return value

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        return check_schedule(value)

    @field_validator("destinations")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not name a destination twice")
        return value


def audience_problems(audiences: Any, destinations: Mapping[str, Any]) -> list[str]:
    """Problems crossing the raw `audiences:` mapping with the rest of the config, each by
    its path (read from the raw input so they show even when other fields are invalid)."""
    if not isinstance(audiences, Mapping):
        return []
    problems: list[str] = []
    known = ", ".join(sorted(str(d) for d in destinations)) or "none configured"
    for name, audience in audiences.items():
        if not NAME.match(str(name)):
            problems.append(f"audiences.{name}: a name is 1-64 letters, digits, _, . or - "
                            "(not starting with . or -)")
        targets = audience.get("destinations") if isinstance(audience, Mapping) else None
        if not isinstance(targets, list):
            continue
        for i, dest in enumerate(targets):
            if isinstance(dest, str) and dest not in destinations:
                problems.append(f"audiences.{name}.destinations.{i}: unknown destination "
                                f"{dest!r} (known: {known})")
    return problems


def audience_check(raw: Mapping[str, Any], destinations: Mapping[str, Any],
                   loaded: Sequence[ConfiguredDestination]) -> list[str]:
    """The audiences' check across sections (crossdock.loader.CROSS_CHECKS)."""
    return audience_problems(raw.get("audiences"), destinations)


@dataclass
class Audience:
    """An audience ready to evaluate: its config with the condition compiled."""

    name: str
    config: AudienceConfig
    _fn: Callable[..., Any] = field(repr=False, default=lambda **_: False)
    #: profiles whose attributes had the wrong type for the condition, last evaluation
    type_errors: int = 0

    @classmethod
    def build(cls, name: str, config: AudienceConfig) -> Audience:
        return cls(name, config, compile_condition(config.condition))

    @property
    def destinations(self) -> frozenset[str]:
        return frozenset(self.config.destinations)

    @property
    def schedule(self) -> Schedule | None:
        return None if self.config.schedule is None else parse_schedule(self.config.schedule)

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """True when a profile with these attributes is a member (see the module docstring
        for undefined attributes and type errors)."""
        try:
            # `attributes["a name with spaces"]` reaches names that are not identifiers.
            return bool(self._fn(**{"attributes": attributes, **attributes}))
        except UndefinedError:
            return False
        except (TypeError, ValueError, ArithmeticError, SecurityError) as exc:
            self.type_errors += 1
            log.debug("audience %s: condition failed (%s); not a member", self.name, exc)
            return False


def audiences_of(config: Any) -> list[Audience]:
    """Every audience of a `Config` (crossdock.config), compiled."""
    return [Audience.build(name, audience)
            for name, audience in (getattr(config, "audiences", None) or {}).items()]
