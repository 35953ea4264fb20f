"""The plugin manager: loads `crossdock` entry points and collects destination types.

CROSSDOCK_LOAD_PLUGINS=name1,name2 limits which entry-point plugins load (empty: none).
"""

from __future__ import annotations

import os
from functools import cache
from importlib.metadata import entry_points

import pluggy

from crossdock import hookspecs
from crossdock.destination import Destination
from crossdock.errors import PluginError

ENTRY_POINT_GROUP = "crossdock"
LOAD_PLUGINS_ENV = "CROSSDOCK_LOAD_PLUGINS"


@cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every allowed entry-point plugin registered."""
    pm = pluggy.PluginManager("crossdock")
    pm.add_hookspecs(hookspecs)
    allowed = os.environ.get(LOAD_PLUGINS_ENV)
    names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if names is not None and ep.name not in names:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        pm.register(module, name=ep.name)
    return pm


def destination_types(pm: pluggy.PluginManager | None = None) -> dict[str, type[Destination]]:
    """Every registered destination type by its plugin name."""
    pm = pm or plugin_manager()
    found: dict[str, type[Destination]] = {}

    def register(cls: type[Destination]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Destination)):
            raise PluginError(f"register_destinations got {cls!r}, not a Destination subclass")
        name = getattr(cls, "plugin_name", None)
        if not name:
            raise PluginError(f"{cls.__qualname__} has no plugin_name")
        if name in found and found[name] is not cls:
            raise PluginError(
                f"two destination types are named {name!r}: "
                f"{found[name].__module__} and {cls.__module__}"
            )
        found[name] = cls

    pm.hook.register_destinations(register=register)
    return found
