"""`mapping.options` reach the plugin instance the engine builds: `self.options` is the shipped
options with the operator's deep-merged over them, checked by the plugin's `options_model`;
a plugin whose constructor takes only `settings` keeps working and gets them too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from crossdock.destination import Destination
from crossdock.errors import ConfigError
from crossdock.loader import parse_config


class Settings(BaseModel):
    url: str = "http://127.0.0.1:9"


SHIPPED = {"options": {"sources": {"email": ["email"], "phone": ["phone"]}, "prefix": "cd_"}}


class FreeForm(Destination):
    """No options model: any mapping of options is taken as it is."""

    plugin_name: ClassVar[str] = "freeform"
    settings_model = Settings

    @classmethod
    def default_mapping(cls) -> dict[str, Any]:
        return dict(SHIPPED)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: dict[str, list[str]] = {}
    prefix: str = ""
    limit: int = 5


class Modelled(FreeForm):
    plugin_name: ClassVar[str] = "modelled"
    options_model = Options


TYPES: dict[str, type[Destination]] = {c.plugin_name: c for c in (FreeForm, Modelled)}
OVERRIDE = {"options": {"sources": {"email": ["work_email"]}, "extra": True}}


def load(tmp_path: Path, plugin: str, mapping: dict[str, Any]) -> Destination:
    raw = {"destinations": {"d": {"plugin": plugin, "mapping": mapping}}}
    return parse_config(raw, base_dir=tmp_path, env={}, types=TYPES).destination("d").plugin


def test_a_plugin_built_alone_reads_its_shipped_options() -> None:
    assert FreeForm(Settings()).options == SHIPPED["options"]
    assert Modelled(Settings()).options == {**SHIPPED["options"], "limit": 5}


def test_the_operators_options_are_deep_merged_over_the_shipped(tmp_path: Path) -> None:
    dest = load(tmp_path, "freeform", OVERRIDE)
    assert dest.options == {"sources": {"email": ["work_email"], "phone": ["phone"]},
                            "prefix": "cd_", "extra": True}
    assert dest.mapping["options"] == dest.options


def test_an_options_model_fills_defaults_and_coerces(tmp_path: Path) -> None:
    dest = load(tmp_path, "modelled", {"options": {"limit": "7"}})
    assert dest.options == {**SHIPPED["options"], "limit": 7}


def test_an_options_model_names_every_bad_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "modelled", {"options": {"prefx": "x", "limit": "many",
                                                "sources": {"email": "work_email"}}})
    assert sorted(caught.value.problems) == [
        "destinations.d.mapping.options.limit: Input should be a valid integer, unable to "
        "parse string as an integer",
        "destinations.d.mapping.options.prefx: unknown option (did you mean 'prefix'?)",
        "destinations.d.mapping.options.sources.email: Input should be a valid list",
    ]


def test_options_that_are_not_a_mapping_are_one_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "modelled", {"options": ["x"]})
    assert caught.value.problems == [
        "destinations.d.mapping.options: Input should be a valid dictionary"]
