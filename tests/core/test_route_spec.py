"""Mapping files are validated at config load: every problem by its path, with the rule."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from route_helpers import load

from crossdock.errors import ConfigError
from crossdock.loader import load_config
from crossdock.plugin_manager import DEFAULT_PLUGINS, destination_types
from crossdock.route.mapping_spec import mapping_problems, parse_mapping

P = "destinations.d.mapping"

BAD = [
    ({"templats": {}}, f"{P}.templats: unknown mapping key (did you mean 'templates'?)"),
    ({"zzz": 1}, f"{P}.zzz: unknown mapping key (plugin-specific data goes under `options:`)"),
    ({"keys": {"normalise": "x"}}, f"{P}.keys.normalise: unknown key"),
    ({"keys": {"case": "kebab"}},
     f"{P}.keys.case: Input should be 'none', 'lower', 'upper', 'snake', 'camel' or 'pascal'"),
    ({"keys": {"apply_to": ["identities"]}},
     f"{P}.keys.apply_to.0: Input should be 'properties' or 'traits'"),
    ({"keys": "snake"}, f"{P}.keys: Input should be a valid dictionary or instance of KeysSpec"),
    ({"limits": {"event_attributes": -1}},
     f"{P}.limits.event_attributes: Input should be greater than or equal to 0"),
    ({"limits": {"string_length": 0}},
     f"{P}.limits.string_length: Input should be greater than or equal to 1"),
    ({"limits": {"user_attributes": "ten"}},
     f"{P}.limits.user_attributes: Input should be a valid integer, unable to parse string "
     "as an integer"),
    ({"reserved": {"$FirstName": 5}}, f"{P}.reserved.$FirstName: Input should be a valid string"),
    ({"reserved": {"$FirstName": ""}}, f"{P}.reserved: '$FirstName' maps to an empty name"),
    ({"event_names": {"Order Completed": " "}},
     f"{P}.event_names: 'Order Completed' maps to an empty name"),
    ({"message_types": ["click"]},
     f"{P}.message_types.0: Input should be 'track', 'identify', 'page', 'screen', 'alias' "
     "or 'group'"),
    ({"forward_by_default": "maybe"},
     f"{P}.forward_by_default: Input should be a valid boolean, unable to interpret input"),
    ({"rules": {"require_consent": [""]}},
     f"{P}.rules.require_consent: consent purposes must be non-empty strings"),
    ({"identities": {"always": "profileId"}},
     f"{P}.identities.always: Input should be a valid list"),
    ({"template_format": {"body": "xml"}}, f"{P}.template_format.body: Input should be 'text' "
     "or 'json'"),
    ({"templates": {"text": 5}}, f"{P}.templates.text: Input should be a valid string"),
    ({"templates": {"text": "{{ event "}},
     f"{P}.templates.text: syntax error at line 1: unexpected end of template"),
]


@pytest.mark.parametrize(("mapping", "problem"), BAD)
def test_a_bad_operator_mapping_is_reported_by_path(mapping: dict[str, Any],
                                                    problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(mapping=mapping)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(("mapping", "problem"), BAD[:6])
def test_a_bad_shipped_mapping_is_reported_the_same_way(mapping: dict[str, Any],
                                                        problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(mapping)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    problems = mapping_problems({"templats": {}, "keys": {"case": "kebab"},
                                 "limits": {"event_attributes": -1}}, "m")
    assert [p.split(":")[0] for p in problems] == [
        "m.templats", "m.keys.case", "m.limits.event_attributes"]


def test_a_mapping_must_be_a_mapping() -> None:
    assert mapping_problems([1], "m") == ["m: must be a mapping, got list"]  # type: ignore[arg-type]


def test_a_full_mapping_is_valid_and_defaults_are_sensible() -> None:
    full = {
        "forward_by_default": False, "message_types": ["track", "identify"],
        "rules": {"only_identified": True, "require_consent": ["marketing"]},
        "identities": {"always": ["profileId"]},
        "keys": {"normalize": "non_alphanumeric_to_underscore",
                 "strip_leading_underscores": True, "strip_trailing_underscores": False,
                 "case": None, "apply_to": ["properties"]},
        "values": {"stringify": True, "apply_to": ["properties", "traits"]},
        "limits": {"event_attributes": 10, "user_attributes": 200, "string_length": None},
        "reserved": {"$FirstName": "first_name"}, "event_names": {"A": "a"},
        "templates": {"text": "{{ event }}"}, "template_format": {"text": "text"},
        "options": {"anything": ["the", "plugin", "reads"]},
    }
    assert mapping_problems(full, "m") == []
    assert parse_mapping(full).keys.case == "none"
    empty = parse_mapping({})
    assert empty.forward_by_default is True and empty.message_types is None
    assert empty.keys.normalize == "none" and empty.values.stringify is False
    assert empty.limits.event_attributes is None


def test_every_shipped_mapping_file_is_valid() -> None:
    presets = [f for f in Path(str(resources.files("crossdock.mappings"))).rglob("*.yaml")]
    assert presets
    for f in presets:
        assert mapping_problems(yaml.safe_load(f.read_text()) or {}, f.name) == []
    built_in = {name: cls for name, cls in destination_types().items()
                if cls.__module__.startswith("crossdock.plugins.")}
    assert len(built_in) == len(DEFAULT_PLUGINS)
    for name, cls in built_in.items():
        assert cls.mapping_path() is not None, name  # plugins/<name>/mapping.yaml
        assert mapping_problems(cls.default_mapping(), name) == []


def test_crossdock_validate_path_reports_a_bad_mapping_in_the_yaml_file(tmp_path: Path) -> None:
    config = tmp_path / "crossdock.yaml"
    config.write_text(
        "destinations:\n"
        "  hook:\n"
        "    plugin: webhook\n"
        "    settings: {url: 'http://127.0.0.1:9/hook'}\n"
        "    delivery: {allow_private_network: true}\n"
        "    mapping:\n"
        "      templates: {body: '{{ event '}\n"
        "      limits: {event_attributes: many}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(config, env={})
    paths = sorted(p.split(":")[0] for p in info.value.problems)
    assert paths == ["destinations.hook.mapping.limits.event_attributes",
                     "destinations.hook.mapping.templates.body"]
    assert any("syntax error at line 1" in p for p in info.value.problems)
