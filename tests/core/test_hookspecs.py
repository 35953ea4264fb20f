"""Every hook is documented with its exact arguments, and the plugin manager honours
CROSSDOCK_LOAD_PLUGINS."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import httpx
import pluggy
import pytest

from crossdock import hookspecs
from crossdock.destination import Destination
from crossdock.errors import PluginError
from crossdock.plugin_manager import destination_types

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def hook_functions() -> list[tuple[str, inspect.Signature]]:
    return [
        (name, inspect.signature(fn))
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if getattr(fn, "crossdock_spec", None) is not None
    ]


def test_there_are_hooks() -> None:
    assert {name for name, _ in hook_functions()} >= {"register_destinations"}


@pytest.mark.parametrize(("name", "signature"), hook_functions())
def test_each_hook_is_documented_with_its_arguments(
    name: str, signature: inspect.Signature
) -> None:
    args = ", ".join(signature.parameters)
    headings = re.findall(r"^## (.+)$", DOCS.read_text(), flags=re.M)
    assert f"{name}({args})" in headings
    assert (getattr(hookspecs, name).__doc__ or "").strip()


class One(Destination):
    plugin_name = "one"


class OtherOne(Destination):
    plugin_name = "one"


def manager_with(*impls: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("crossdock")
    pm.add_hookspecs(hookspecs)
    for impl in impls:
        pm.register(impl)
    return pm


def test_a_plugin_contributes_destination_types() -> None:
    class Plugin:
        @hookspecs.hookimpl
        def register_destinations(self, register):  # type: ignore[no-untyped-def]
            register(One)

    assert destination_types(manager_with(Plugin())) == {"one": One}


def test_two_types_with_one_name_are_refused_naming_both() -> None:
    class A:
        @hookspecs.hookimpl
        def register_destinations(self, register):  # type: ignore[no-untyped-def]
            register(One)

    class B:
        @hookspecs.hookimpl
        def register_destinations(self, register):  # type: ignore[no-untyped-def]
            register(OtherOne)

    with pytest.raises(PluginError, match="two destination types are named 'one'"):
        destination_types(manager_with(A(), B()))


def test_registering_something_else_is_refused() -> None:
    class Bad:
        @hookspecs.hookimpl
        def register_destinations(self, register):  # type: ignore[no-untyped-def]
            register(object)

    with pytest.raises(PluginError, match="not a Destination subclass"):
        destination_types(manager_with(Bad()))


def test_register_demo_destinations_joins_the_demo_after_the_built_ins() -> None:
    from aiohttp import web

    from crossdock.demo import demo_destinations
    from crossdock.plugin_manager import plugin_manager
    from crossdock.testing.demo import DemoContext, DemoDestination

    class Plugin:
        @hookspecs.hookimpl
        def register_demo_destinations(self, register: Any, context: DemoContext) -> None:
            server = context.serve(web.Application())
            register(DemoDestination("extra", {"plugin": "webhook",
                                               "settings": {"url": server.url}},
                                     lambda: [], str))

    pm = plugin_manager()
    pm.register(Plugin(), name="test-demo")
    try:
        with demo_destinations() as found:
            names = [d.name for d in found]
            # The plugin's server runs as long as the demo does.
            assert httpx.get(f"{found[-1].config['settings']['url']}/x").status_code == 404
    finally:
        pm.unregister(name="test-demo")
    assert names[:5] == ["warehouse-webhook", "slack-orders", "sessionm", "mailchimp-main",
                         "fb-high-value"]  # then the built-ins added since
    assert names[-1] == "extra" and names.count("extra") == 1
