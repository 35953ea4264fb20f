"""crossdock.yaml loaded: read, `${ENV}` interpolated, validated against the models of
crossdock.config, and checked where a check needs a subsystem: each destination's plugin
(settings, mapping options, batch size), its mapping (crossdock.route.mapping_spec), filter
(crossdock.route.filtering) and transform (crossdock.functions), the egress guard, and the
checks that cross sections, which each subsystem owns and this module runs in order
(`CROSS_CHECKS`: audiences, snapshot exports).

`load_config` returns a `LoadedConfig` whose destinations carry their plugin instance and
merged mapping, or raises ConfigError listing every problem as "path: message".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from crossdock.audiences.spec import audience_check
from crossdock.config import (
    Config,
    ConfiguredDestination,
    DestinationConfig,
    LoadedConfig,
    deep_merge,
    delivery_warnings,
)
from crossdock.destination import Destination, DestinationContext, Script
from crossdock.egress import url_problems
from crossdock.errors import ConfigError, PluginError
from crossdock.functions.config import TRANSFORM_ENTRY, FunctionsConfig, Source, load_function
from crossdock.functions.runtime import LoadedFunction
from crossdock.models import validation_problems
from crossdock.snapshots.spec import snapshot_check

if TYPE_CHECKING:
    from crossdock.plugin_manager import LoadFailure

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: A check across sections, owned by its subsystem: (the raw document, its raw
#: `destinations:`, the destinations that loaded) -> problems as "path: message". It reads
#: the raw input so that its problems show even when other fields are invalid.
CrossCheck = Callable[[Mapping[str, Any], Mapping[str, Any], Sequence[ConfiguredDestination]],
                      list[str]]

#: run after every destination is loaded, in this order
CROSS_CHECKS: tuple[CrossCheck, ...] = (audience_check, snapshot_check)


def interpolate_env(value: Any, path: str, problems: list[str], env: dict[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string, recording unset variables."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, f"{path}.{k}" if path else str(k), problems, env)
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, f"{path}.{i}", problems, env) for i, v in enumerate(value)]
    return value



def parse_config(
    raw: Any,
    *,
    base_dir: Path,
    env: dict[str, str] | None = None,
    types: dict[str, type[Destination]] | None = None,
    read_only: bool = False,
) -> LoadedConfig:
    """Validate a parsed YAML document; raise ConfigError with every problem by its path.

    `read_only`: for commands that send nothing (`status`, `dead-letters list`, `profiles
    show`). A destination whose settings need an unset environment variable (its secret,
    kept only where the daemon runs) is then left out and named in `withheld`, with a
    warning, instead of being a problem."""
    from crossdock.plugin_manager import destination_types, load_failures
    from crossdock.route.filtering import filter_warnings
    from crossdock.route.mapping_spec import mapping_problems, parse_mapping

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of outbox, collector, destinations"])
    problems: list[str] = []
    raw = interpolate_env(raw, "", problems, dict(os.environ) if env is None else env)
    # The paths of unset variables: the empty value standing in for one would fail its own
    # rule too ("must be an https://hooks.slack.com/... URL"), which only hides the one
    # thing to fix, so later problems at those paths are left out.
    withheld: dict[str, str] = {}
    if read_only:
        problems = [p for p in problems if not _withhold(p, withheld)]
    unset = {problem.split(": ", 1)[0] for problem in problems}
    interpolation_problems = len(problems)
    raw_destinations = raw.get("destinations") or {}
    if not isinstance(raw_destinations, dict):
        problems.append("destinations: must be a mapping of destination name to settings")
        raw_destinations = {}
    config = Config()
    try:
        config = Config.model_validate({**raw, "destinations": {}})
    except ValidationError as exc:
        problems.extend(validation_problems(exc))

    failures: list[LoadFailure] = []
    if types is None:
        try:
            types = destination_types()
        except PluginError as exc:
            raise ConfigError([*problems, f"plugins: {exc}"]) from exc
        failures = load_failures()
    destinations: list[ConfiguredDestination] = []
    warnings: list[str] = config.collector.warnings()
    for name, raw_dest in raw_destinations.items():
        prefix = f"destinations.{name}"
        if name in withheld:
            warnings.append(f"{prefix}: left out: {withheld[name]}; this command sends "
                            "nothing, so it goes on without it")
            continue
        raw_dest = _moved_opt_in(raw_dest, types, prefix, warnings)
        try:
            dest = DestinationConfig.model_validate(raw_dest)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, prefix))
            dest = None
        plugin_name = raw_dest.get("plugin") if isinstance(raw_dest, dict) else None
        cls = types.get(plugin_name) if isinstance(plugin_name, str) else None
        if cls is None:
            if isinstance(plugin_name, str):
                problems.append(f"{prefix}.plugin: " + _unknown_plugin(plugin_name, types,
                                                                        failures))
            continue
        settings, settings_problems = cls.parse_settings(raw_dest.get("settings"),
                                                         f"{prefix}.settings")
        problems.extend(settings_problems)
        if dest is None:
            continue
        # Checked even when the settings are wrong: every problem in one run of validate,
        # not a mapping typo found only after the settings are fixed.
        mapping = deep_merge(cls.default_mapping(), dest.mapping)
        mapping_errors = mapping_problems(mapping, f"{prefix}.mapping")
        problems.extend(mapping_errors)
        option_problems = cls.options_problems(mapping.get("options"), f"{prefix}.mapping.options")
        problems.extend(option_problems)
        batch = dest.delivery.batch_size
        if batch is not None and batch > cls.max_batch_size:
            problems.append(
                f"{prefix}.delivery.batch_size: at most {cls.max_batch_size} for plugin "
                f"{cls.plugin_name}, got {batch}"
            )
        transform = None
        if dest.transform is not None and dest.enabled:
            transform, transform_problems = load_function(
                dest.transform, dest.transform.libraries, config.functions, base_dir,
                f"{prefix}.transform", (TRANSFORM_ENTRY,))
            problems.extend(transform_problems)
        if settings is None:
            continue
        if not dest.delivery.allow_private_network:
            # Warned, not refused: what decides is the address at connect time, where the
            # guard refuses it (a name may resolve elsewhere by then); this says so early.
            warnings.extend(url_problems(settings, f"{prefix}.settings"))
        config.destinations[name] = dest
        if not dest.enabled or option_problems:
            continue
        # The plugin gets the merged mapping, so the operator's `mapping.options` reach it.
        plugin = cls.configured(settings, mapping, name)
        function, function_problems = _script_function(
            plugin, dest, config.functions, base_dir, prefix)
        problems.extend(function_problems)
        configured = ConfiguredDestination(name, dest, plugin, mapping, transform=transform,
                                           function=function)
        # Identities the mapping always forwards are names an identities filter may use.
        always = [] if mapping_errors else parse_mapping(mapping).identities.always
        configured.warnings = [
            f"{prefix}.{w}" for w in delivery_warnings(dest.delivery)
        ] + [f"{prefix}.{w}" for w in filter_warnings(dest.filter, config.profiles.attributes,
                                                      always)
        ] + [f"{prefix}: {w}" for w in configured.plugin.config_warnings(_context(configured))]
        warnings.extend(configured.warnings)
        destinations.append(configured)
    for check in CROSS_CHECKS:
        problems.extend(check(raw, raw_destinations, destinations))
    if problems:
        raise ConfigError(problems[:interpolation_problems] + [
            p for p in problems[interpolation_problems:] if p.split(": ", 1)[0] not in unset])
    return LoadedConfig(config, destinations, base_dir, warnings, withheld)


def _script_function(
    plugin: Destination, dest: DestinationConfig, functions: FunctionsConfig, base_dir: Path,
    prefix: str,
) -> tuple[tuple[LoadedFunction, Script] | None, list[str]]:
    """The plugin's destination function (`Destination.script()`), compiled with its
    libraries; problems named by the settings that describe it."""
    try:
        script = plugin.script()
    except Exception as exc:  # a plugin bug names the plugin, never stops validate
        return None, [f"{prefix}.settings: plugin {plugin.plugin_name} script() failed: "
                      f"{type(exc).__name__}: {exc}"]
    if script is None or not dest.enabled:
        return None, []
    if dest.transform is not None:
        return None, [f"{prefix}.transform: a destination function (plugin "
                      f"{plugin.plugin_name}) gets the routed event itself: do in it what "
                      "the transform would"]
    entries = (script.entry,) + ((script.classify,) if script.classify else ())
    loaded, problems = load_function(
        Source(file=script.file, code=script.code), list(script.libraries), functions,
        base_dir, f"{prefix}.settings", entries)
    if loaded is not None and script.entry not in loaded.defined:
        return None, [f"{prefix}.settings: {loaded.name} defines no function {script.entry} "
                      "(write `function " + script.entry + "(event, settings, metadata) "
                      "{ ... }`)"]
    return (None if loaded is None else (loaded, script)), problems


def _context(configured: ConfiguredDestination) -> DestinationContext:
    """What the destination's plugin may read about it (`Destination.config_warnings`)."""
    from crossdock.profiles.attributes import STORED_NAMES

    filt = configured.config.filter
    return DestinationContext(
        configured.name, configured.mapping,
        {"events": filt.events.allow, "event_attributes": filt.event_attributes.allow,
         "user_attributes": filt.user_attributes.allow,
         "identities": filt.identities.allow},
        STORED_NAMES)


def _withhold(problem: str, withheld: dict[str, str]) -> bool:
    """Whether `problem` is an unset variable in a destination's settings; if so the
    destination goes into `withheld` (name -> the problem's text)."""
    path, _, text = problem.partition(": ")
    parts = path.split(".")
    if len(parts) < 3 or parts[0] != "destinations" or parts[2] != "settings":
        return False
    # A name with a dot in it does not match here: it stays a problem, as without read_only.
    withheld.setdefault(parts[1], f"{'.'.join(parts[2:])}: {text}")
    return True


#: the webhook's own opt-in into private networks, before the engine's guard took its place
_OLD_OPT_IN = "allow_private_network"


def _moved_opt_in(raw_dest: Any, types: dict[str, type[Destination]], prefix: str,
                  warnings: list[str]) -> Any:
    """`settings.allow_private_network` (the webhook's, before the engine guarded every
    destination) read as `delivery.allow_private_network`, with a warning to move it; unless
    the plugin's settings declare such a field of their own."""
    if not isinstance(raw_dest, dict) or not isinstance(raw_dest.get("settings"), dict):
        return raw_dest
    plugin = raw_dest.get("plugin")
    cls = types.get(plugin) if isinstance(plugin, str) else None
    settings = raw_dest["settings"]
    if _OLD_OPT_IN not in settings or (cls is not None
                                       and _OLD_OPT_IN in cls.settings_model.model_fields):
        return raw_dest
    warnings.append(f"{prefix}.settings.{_OLD_OPT_IN}: moved to delivery.{_OLD_OPT_IN} (the "
                    "engine's egress guard, for every destination); read as that for now, "
                    "move it there")
    delivery = raw_dest.get("delivery")
    delivery = dict(delivery) if isinstance(delivery, dict) else {}
    delivery.setdefault(_OLD_OPT_IN, settings[_OLD_OPT_IN])
    return {**raw_dest, "settings": {k: v for k, v in settings.items() if k != _OLD_OPT_IN},
            "delivery": delivery}


def _unknown_plugin(name: str, types: dict[str, type[Destination]],
                    failures: list[LoadFailure]) -> str:
    """Why no plugin type is called `name`: the plugin of that name failed to import, or it
    is not installed (the known types, and any plugin that failed, named)."""
    for failure in failures:
        if failure.name == name:
            return f"{failure.describe()} (crossdock -v plugins shows the traceback)"
    known = ", ".join(sorted(types)) or "none installed"
    text = f"unknown plugin {name!r} (known: {known})"
    if failures:
        text += "; failed to import: " + ", ".join(f.name for f in failures)
    return text


def load_config(path: str | Path, env: dict[str, str] | None = None, *,
                read_only: bool = False) -> LoadedConfig:
    """Read and validate crossdock.yaml (`read_only`: see parse_config)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    return parse_config(raw, base_dir=path.resolve().parent, env=env, read_only=read_only)

