"""The plugin manager: registers the built-in plugins and the `crossdock` entry points, and
collects what their hooks contribute.

The built-ins are the modules of `DEFAULT_PLUGINS`, registered in-process (as llm and
datasette do); third-party plugins come through the `crossdock` entry-point group. Both use
the same hooks. CROSSDOCK_LOAD_PLUGINS=name1,name2 limits which of either load (empty: none);
a built-in's name is its module's last part (`webhook`).

A third-party plugin that fails to import does not stop Crossdock: it is left out and kept in
`load_failures()`, which the CLI prints as a warning (with the traceback under -v), and a
destination naming a plugin type that is missing is refused with the failure beside it.
"""

from __future__ import annotations

import functools
import importlib
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from crossdock import hookspecs
from crossdock.destination import Destination
from crossdock.errors import PluginError

ENTRY_POINT_GROUP = "crossdock"
LOAD_PLUGINS_ENV = "CROSSDOCK_LOAD_PLUGINS"

#: the built-in plugins, registered in this order (the demo shows their destinations so)
DEFAULT_PLUGINS = (
    "crossdock.plugins.webhook",
    "crossdock.plugins.slack",
    "crossdock.plugins.sessionm",
    "crossdock.plugins.mailchimp",
    "crossdock.plugins.facebook_audience",
    "crossdock.plugins.attentive",
    "crossdock.plugins.cordial",
    "crossdock.plugins.pipedrive",
    "crossdock.plugins.brevo",
    "crossdock.plugins.twilio",
    "crossdock.plugins.sfmc",
    "crossdock.plugins.sfcc",
    "crossdock.plugins.google_ads",
    "crossdock.plugins.amplitude",
    "crossdock.plugins.tiktok",
    "crossdock.plugins.vtex",
    "crossdock.plugins.shopify",
    "crossdock.plugins.function",
    "crossdock.plugins.files",
    "crossdock.plugins.s3",
    "crossdock.plugins.sftp",
    "crossdock.plugins.ftp",
    "crossdock.plugins.mailup",
)


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be imported: its name, what it points at, why."""

    name: str
    target: str
    error: str
    traceback: str

    def describe(self) -> str:
        return f"plugin {self.name!r} ({self.target}) failed to import: {self.error}"


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every allowed plugin registered."""
    pm = pluggy.PluginManager("crossdock")
    pm.add_hookspecs(hookspecs)
    allowed = os.environ.get(LOAD_PLUGINS_ENV)
    names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
    for name, target, load in _candidates():
        if (names is not None and name not in names) or pm.get_plugin(name) is not None:
            continue
        try:
            module = load()
        except Exception as exc:
            _FAILURES.append(LoadFailure(name, target, _describe(exc),
                                           traceback.format_exc()))
            continue
        pm.register(module, name=name)
    return pm


def _candidates() -> Iterator[tuple[str, str, Callable[[], object]]]:
    """(name, what it points at, how to import it) for each built-in, then each entry point."""
    for module in DEFAULT_PLUGINS:
        yield module.rpartition(".")[2], module, functools.partial(importlib.import_module,
                                                                   module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        yield ep.name, ep.value, ep.load


#: the plugins that failed to import, filled once by `plugin_manager()`
_FAILURES: list[LoadFailure] = []


def load_failures() -> list[LoadFailure]:
    """The plugins that failed to import when the plugin manager was made."""
    plugin_manager()
    return list(_FAILURES)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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


def call_in_order(hook: pluggy.HookCaller, **arguments: object) -> None:
    """Call a `register_*` hook's implementations one by one in the order their plugins were
    registered (built-ins first, in DEFAULT_PLUGINS order), where pluggy calls the last
    registered first: for contributions whose order shows (the demo's destinations)."""
    for impl in hook.get_hookimpls():
        if not impl.hookwrapper and not impl.wrapper:
            impl.function(**{name: arguments[name] for name in impl.argnames})
