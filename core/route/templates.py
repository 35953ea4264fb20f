"""Mapping templates: sandboxed Jinja2, compiled once per destination, rendered per message.

The environment is `ImmutableSandboxedEnvironment` (a `SandboxedEnvironment` that also refuses
to mutate lists and dicts, since one message's payload objects are shared between
destinations) with `StrictUndefined` and no autoescaping. Templates cannot reach Python
internals (`{{ ''.__class__ }}` raises SecurityError) and a name the payload lacks is an error,
not an empty string. Plugins adjust the environment through the `prepare_jinja2_environment`
hook, called once per environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy
from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from crossdock.errors import MessageError
from crossdock.kit import json_content, stringify


def tojson(value: Any, indent: int | None = None) -> str:
    """JSON text of a value, for building JSON bodies (`{{ event | tojson }}`): compact, not
    HTML-escaped (Jinja's own tojson escapes <, >, & and ' for HTML)."""
    if indent is None:
        return json_content(value).decode()
    return json.dumps(value, ensure_ascii=False, indent=indent)


def stringify_filter(value: Any) -> str:
    """A value the way `values.stringify` sends it; None becomes the empty string."""
    text = stringify(value)
    return "" if text is None else text


def make_environment(pm: pluggy.PluginManager | None = None) -> SandboxedEnvironment:
    """A fresh sandboxed environment with Crossdock's filters and every plugin's adjustments."""
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters["tojson"] = tojson
    env.filters["stringify"] = stringify_filter
    if pm is None:
        from crossdock.plugin_manager import plugin_manager

        pm = plugin_manager()
    pm.hook.prepare_jinja2_environment(env=env)
    return env


def template_problems(
    templates: Mapping[str, str], path: str, env: SandboxedEnvironment | None = None
) -> list[str]:
    """Syntax errors (and unknown filters or tests) of each template, as "path.name: ..."."""
    if not templates:
        return []
    env = env or make_environment()
    problems = []
    for name, source in templates.items():
        try:
            env.from_string(source)
        except TemplateSyntaxError as exc:
            problems.append(f"{path}.{name}: syntax error at line {exc.lineno}: {exc.message}")
    return problems


def render_problem(name: str, exc: Exception) -> str:
    """What went wrong rendering one template, for MessageError."""
    where = f"mapping.templates.{name}"
    if isinstance(exc, SecurityError):
        return f"{where}: not allowed in the template sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return f"{where}: {exc} in this message"
    return f"{where}: rendering failed: {type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """One destination's compiled templates. `json_names` are parsed after rendering."""

    templates: tuple[tuple[str, Template], ...]
    json_names: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.templates)

    def render(self, context: dict[str, Any]) -> dict[str, Any]:
        """Each template rendered with the payload as its context.

        Raises MessageError naming the template when one fails. A `json` template whose
        output is not JSON is kept as text: the plugin decides (and reports) what to do."""
        rendered: dict[str, Any] = {}
        for name, template in self.templates:
            try:
                text = template.render(context)
            except Exception as exc:  # anything a template does wrong is this message's problem
                raise MessageError([render_problem(name, exc)]) from exc
            if name in self.json_names:
                try:
                    rendered[name] = json.loads(text)
                    continue
                except ValueError:
                    pass
            rendered[name] = text
        return rendered


def compile_templates(
    templates: Mapping[str, str],
    formats: Mapping[str, str],
    env: SandboxedEnvironment | None = None,
) -> TemplateSet:
    """Compile every template once (names in sorted order, so rendering order is stable)."""
    if not templates:
        return TemplateSet((), frozenset())
    env = env or make_environment()
    compiled = tuple((name, env.from_string(templates[name])) for name in sorted(templates))
    json_names = frozenset(n for n, fmt in formats.items() if fmt == "json")
    return TemplateSet(compiled, json_names)
