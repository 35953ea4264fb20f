"""crossdock.yaml: env interpolation, every problem listed by its path, plugin settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, HttpUrl, SecretStr

from crossdock.config import deep_merge
from crossdock.destination import Destination
from crossdock.durations import parse_duration
from crossdock.errors import ConfigError
from crossdock.loader import load_config, parse_config


class HookSettings(BaseModel):
    url: HttpUrl
    token: SecretStr


class HookDestination(Destination):
    plugin_name = "hook"
    settings_model = HookSettings
    max_batch_size = 50

    @classmethod
    def default_mapping(cls) -> dict[str, Any]:
        return {"values": {"stringify": False}, "event_names": {"A": "a"}}


TYPES: dict[str, type[Destination]] = {"hook": HookDestination}


def parse(raw: Any, env: dict[str, str] | None = None, tmp: Path = Path("/tmp")) -> Any:
    return parse_config(raw, base_dir=tmp, env=env or {}, types=TYPES)


def dest(**over: Any) -> dict[str, Any]:
    base = {"plugin": "hook", "settings": {"url": "https://example.com/h", "token": "t"}}
    return {**base, **over}


def test_a_valid_config_loads_with_plugin_instances_and_merged_mapping() -> None:
    loaded = parse({"destinations": {"alerts": dest(mapping={"event_names": {"B": "b"}})}})
    (d,) = loaded.destinations
    assert d.name == "alerts"
    assert isinstance(d.plugin, HookDestination)
    assert d.plugin.settings.token.get_secret_value() == "t"
    assert d.mapping["event_names"] == {"A": "a", "B": "b"}
    assert d.batch_size == 50


def test_secrets_come_from_the_environment() -> None:
    raw = {"destinations": {"alerts": dest(settings={"url": "https://e.com", "token": "${TOK}"})}}
    loaded = parse(raw, env={"TOK": "s3cret"})
    assert loaded.destinations[0].plugin.settings.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(loaded.destinations[0].plugin.settings)


def test_env_default_is_used_when_unset() -> None:
    raw = {"destinations": {"a": dest(settings={"url": "${URL:-https://d.example}", "token": "x"})}}
    assert str(parse(raw).destinations[0].plugin.settings.url) == "https://d.example/"


def test_every_problem_is_listed_by_its_path() -> None:
    raw = {
        "outbox": {"url": "mysql://nope"},
        "destinations": {
            "slack-alerts": dest(settings={"url": "not a url"}),
            "other": dest(delivery={"batch_size": 0, "max_age": "soon"}),
            "ghost": {"plugin": "nope"},
            "env": dest(settings={"url": "https://e.com", "token": "${MISSING}"}),
            "typo": dest(enabeld=True),
        },
    }
    with pytest.raises(ConfigError) as err:
        parse(raw)
    text = "\n".join(err.value.problems)
    assert "outbox.url: Value error, must start with sqlite:/// or postgresql://" in text or (
        "outbox.url: must start with sqlite:/// or postgresql://" in text
    )
    assert "destinations.slack-alerts.settings.url:" in text
    assert "destinations.slack-alerts.settings.token: is required" in text
    assert "destinations.other.delivery.batch_size:" in text
    assert "destinations.other.delivery.max_age:" in text
    assert "destinations.typo.enabeld: Extra inputs are not permitted" in text


def test_plugin_level_problems_are_listed_together() -> None:
    raw = {
        "destinations": {
            "ghost": {"plugin": "nope"},
            "env": dest(settings={"url": "https://e.com", "token": "${MISSING}"}),
            "big": dest(delivery={"batch_size": 51}),
            "bad": dest(settings={"url": "ftp:/x", "token": "t"}),
        }
    }
    with pytest.raises(ConfigError) as err:
        parse(raw)
    text = "\n".join(err.value.problems)
    assert "destinations.ghost.plugin: unknown plugin 'nope' (known: hook)" in text
    assert "destinations.env.settings.token: environment variable MISSING is not set" in text
    assert "destinations.big.delivery.batch_size: at most 50 for plugin hook, got 51" in text
    assert "destinations.bad.settings.url:" in text


def test_an_unset_variable_is_the_one_problem_at_its_path() -> None:
    # The empty string standing in for ${HOOK_URL} is no URL either; saying so only hid the
    # one thing to fix.
    raw = {"destinations": {"a": dest(settings={"url": "${HOOK_URL}", "token": "t"})}}
    with pytest.raises(ConfigError) as err:
        parse(raw, env={})
    assert err.value.problems == [
        "destinations.a.settings.url: environment variable HOOK_URL is not set"]


def test_the_mapping_is_checked_when_the_settings_are_wrong() -> None:
    # Every problem in one run of `crossdock validate`: a mapping typo was found only once
    # the settings were fixed.
    raw = {"destinations": {"a": dest(settings={"url": "not a url", "token": "t"},
                                      mapping={"templats": {"text": "hi"}})}}
    with pytest.raises(ConfigError) as err:
        parse(raw)
    text = "\n".join(err.value.problems)
    assert "destinations.a.settings.url:" in text
    assert "destinations.a.mapping.templats: unknown mapping key" in text


def test_disabled_destinations_are_validated_but_not_loaded() -> None:
    loaded = parse({"destinations": {"off": dest(enabled=False)}})
    assert loaded.destinations == []
    with pytest.raises(ConfigError):
        parse({"destinations": {"off": dest(enabled=False, settings={})}})


def test_load_config_reads_yaml_and_resolves_the_outbox_path(tmp_path: Path) -> None:
    path = tmp_path / "crossdock.yaml"
    path.write_text(yaml.safe_dump({"outbox": {"url": "sqlite:///data/out.db"}}))
    loaded = load_config(path, env={})
    assert loaded.outbox_url == f"sqlite:///{tmp_path}/data/out.db"


@pytest.mark.parametrize(
    ("text", "problem"),
    [("destinations: [", "not valid YAML"), ("- a\n- b\n", "(top level): must be a mapping")],
)
def test_unreadable_yaml_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "crossdock.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert problem in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml: cannot read" in str(err.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), ("90s", 90.0), ("45m", 2700.0), ("3d", 259200.0), ("250ms", 0.25), ("2h", 7200.0)],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


def test_deep_merge_overrides_leaves_and_merges_mappings() -> None:
    base = {"a": {"b": 1, "c": 2}, "l": [1]}
    assert deep_merge(base, {"a": {"c": 3}, "l": [2]}) == {"a": {"b": 1, "c": 3}, "l": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "l": [1]}


def test_validate_warns_of_a_lease_a_heartbeat_cannot_keep_and_of_odd_probe_times() -> None:
    loaded = parse({"destinations": {
        "short": dest(delivery={"lease": "20s"}),
        "odd": dest(delivery={"circuit": {"probe_base": "5m", "probe_max": "1m"}}),
        "fine": dest(delivery={"lease": "45s"}),
    }})
    assert loaded.warnings == [
        "destinations.short.delivery.lease: 20s is renewed every 6.67s while a batch is in "
        "flight, but an outbox write may wait up to 30s for the database: below 45s a lease "
        "can expire under a live worker and its messages be delivered twice",
        "destinations.odd.delivery.circuit.probe_max: 60s is below probe_base 300s; probes "
        "will come every 60s",
    ]


def test_the_delivery_defaults_retry_for_max_age_with_a_circuit_and_in_order() -> None:
    delivery = parse({"destinations": {"d": dest()}}).destinations[0].config.delivery
    assert (delivery.max_attempts, delivery.min_attempts, delivery.max_age) == (None, 3, 259200)
    assert (delivery.retry_after_max, delivery.lease, delivery.ordered) == (3600, 60, True)
    assert delivery.circuit.model_dump() == {"enabled": True, "failures": 5,
                                             "probe_base": 10.0, "probe_max": 300.0}
    with pytest.raises(ConfigError, match=r"delivery\.circuit\.failures"):
        parse({"destinations": {"d": dest(delivery={"circuit": {"failures": 0}})}})
