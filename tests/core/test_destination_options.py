"""`mapping.options` reach the plugin instance the engine builds: `self.opts` is the shipped
options with the operator's deep-merged over them, validated once by the plugin's options
model (`Destination[Settings, Options]`), and `self.options` the same as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, model_validator

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


class CountedOptions(Options):
    """Options that count how often they are validated."""

    validated: ClassVar[int] = 0

    @model_validator(mode="after")
    def _count(self) -> CountedOptions:
        type(self).validated += 1
        return self


class Typed(Destination[Settings, CountedOptions]):
    """Options declared as the base's second argument: no `options_model` line."""

    plugin_name: ClassVar[str] = "typed"

    @classmethod
    def default_mapping(cls) -> dict[str, Any]:
        return dict(SHIPPED)


TYPES: dict[str, type[Destination]] = {c.plugin_name: c for c in (FreeForm, Modelled, Typed)}
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


def test_the_options_model_is_the_bases_second_argument(tmp_path: Path) -> None:
    assert Typed.options_model is CountedOptions and Typed.settings_model is Settings
    dest = load(tmp_path, "typed", {"options": {"limit": "7"}})
    assert isinstance(dest, Typed) and isinstance(dest.opts, CountedOptions)
    assert (dest.opts.sources, dest.opts.prefix, dest.opts.limit) == (
        SHIPPED["options"]["sources"], "cd_", 7)
    assert dest.options == dest.opts.model_dump()


def test_the_options_are_validated_once_when_the_plugin_is_built() -> None:
    CountedOptions.validated = 0
    Typed(Settings())
    assert CountedOptions.validated == 1


def test_free_form_options_are_the_models_extra_keys(tmp_path: Path) -> None:
    dest = load(tmp_path, "freeform", OVERRIDE)
    assert FreeForm.options_model is None
    assert dest.opts.model_extra == dest.options == {
        "sources": {"email": ["work_email"], "phone": ["phone"]}, "prefix": "cd_",
        "extra": True}
