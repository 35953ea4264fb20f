"""Audience config: conditions in the sandbox, undefined attributes, schedules, and every
config mistake reported by its path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crossdock.audiences.spec import (
    Audience,
    AudienceConfig,
    ConditionError,
    compile_condition,
    parse_schedule,
)
from crossdock.errors import ConfigError
from crossdock.loader import parse_config

HOOK = {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"},
        "delivery": {"allow_private_network": True}}


def audience(condition: str) -> Audience:
    return Audience.build("a", AudienceConfig(condition=condition, destinations=["x"]))


@pytest.mark.parametrize(("condition", "attributes", "member"), [
    ("lifetime_value > 500", {"lifetime_value": 501}, True),
    ("lifetime_value > 500", {"lifetime_value": 500}, False),
    ('lifetime_value > 500 and country == "NO"', {"lifetime_value": 900, "country": "NO"}, True),
    ('lifetime_value > 500 and country == "NO"', {"lifetime_value": 900, "country": "SE"}, False),
    # A missing attribute makes any condition touching it false, whichever way it points.
    ("lifetime_value > 500", {}, False),
    ("lifetime_value <= 500", {}, False),
    ("not vip", {}, False),
    ('country != "NO"', {}, False),
    # ... unless the condition asks about it explicitly.
    ('country is not defined or country != "NO"', {}, True),
    ("vip is defined and vip", {"vip": True}, True),
    # Wrong types are not members (and counted).
    ("lifetime_value > 500", {"lifetime_value": "lots"}, False),
    ('"gold" in tags', {"tags": ["gold", "eu"]}, True),
    ('attributes["Favourite Colour"] == "red"', {"Favourite Colour": "red"}, True),
    ("email.endswith('@example.com')", {"email": "a@example.com"}, True),
])
def test_membership_of_attributes(condition: str, attributes: dict[str, Any],
                                  member: bool) -> None:
    assert audience(condition).matches(attributes) is member


def test_type_errors_are_counted() -> None:
    a = audience("lifetime_value > 500")
    assert not a.matches({"lifetime_value": "lots"})
    assert a.type_errors == 1


def test_the_sandbox_keeps_python_internals_out() -> None:
    a = audience("email.__class__.__mro__[1].__subclasses__() | length > 0")
    assert a.matches({"email": "a@example.com"}) is False
    a = audience("lifetime_value.__class__ is defined")
    assert a.matches({"lifetime_value": 5}) is False


@pytest.mark.parametrize("bad", ["lifetime_value >", "", "a = 1", "{{ x }}", "x ==== 2"])
def test_bad_conditions_are_refused(bad: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(bad)


def test_schedules() -> None:
    assert parse_schedule("1h").seconds == 3600
    assert parse_schedule("90s").seconds == 90
    nightly = parse_schedule("0 3 * * *")
    assert nightly.seconds is None
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
    assert nightly.next_after(start) == datetime(2024, 5, 2, 3, 0, tzinfo=UTC).timestamp()
    at_three = datetime(2024, 5, 2, 3, 0, tzinfo=UTC).timestamp()
    assert nightly.next_after(at_three) == datetime(2024, 5, 3, 3, 0, tzinfo=UTC).timestamp()
    assert parse_schedule("15m").next_after(100.0) == 100.0 + 900
    for bad in ("soon", "0 3 * *", "61 * * * *", "0s"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def load(audiences: Any, tmp_path: Path) -> Any:
    return parse_config({
        "outbox": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
        "destinations": {"hook": HOOK, "other": HOOK},
        "audiences": audiences,
    }, base_dir=tmp_path, env={})


def test_config_loads_audiences(tmp_path: Path) -> None:
    loaded = load({"high_value": {"condition": "lifetime_value > 500",
                                  "destinations": ["hook"], "schedule": "0 3 * * *"}}, tmp_path)
    config = loaded.config.audiences["high_value"]
    assert config.destinations == ["hook"]
    assert config.sync_on_change is True
    assert config.schedule == "0 3 * * *"


def test_config_problems_by_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load({
            "broken": {"condition": "lifetime_value >", "destinations": ["hook"]},
            "lost": {"condition": "x", "destinations": ["hook", "nowhere"]},
            "early": {"condition": "x", "destinations": ["hook"], "schedule": "whenever"},
            "none": {"condition": "x", "destinations": []},
            "odd": {"condition": "x", "destinations": ["hook"], "colour": "red"},
            "has space": {"condition": "x", "destinations": ["hook"]},
        }, tmp_path)
    problems = exc.value.problems
    text = "\n".join(problems)
    assert any(p.startswith("audiences.broken.condition: not a valid Jinja2 expression")
               for p in problems), text
    assert ("audiences.lost.destinations.1: unknown destination 'nowhere' "
            "(known: hook, other)") in problems, text
    assert any(p.startswith("audiences.early.schedule: must be a duration like '1h'")
               for p in problems), text
    assert any(p.startswith("audiences.none.destinations:") for p in problems), text
    assert any(p.startswith("audiences.odd.colour:") for p in problems), text
    assert any(p.startswith("audiences.has space: a name is") for p in problems), text
