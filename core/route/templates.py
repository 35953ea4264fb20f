"""Mapping templates: Jinja2 in a sandbox, so operators' templates cannot reach Python's
internals, with StrictUndefined, so a misspelt variable is an error rather than an empty string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from crossdock.errors import MessageError


@cache
def environment() -> SandboxedEnvironment:
    """The one template environment, after plugins' prepare_jinja2_environment hooks."""
    from crossdock.plugin_manager import plugin_manager

    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                               keep_trailing_newline=False)
    # Compact JSON without HTML escaping: templates build request bodies, not web pages.
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False,
                                                     separators=(",", ":"))
    plugin_manager().hook.prepare_jinja2_environment(env=env)
    return env


def template_problems(templates: dict[str, str], path: str) -> list[str]:
    """Syntax errors of each template, by its path."""
    problems = []
    for name, source in templates.items():
        try:
            environment().parse(source)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (line {line})" if line else ""
            problems.append(f"{path}.{name}: template error{where}: {exc}")
    return problems


@dataclass(frozen=True)
class CompiledTemplate:
    name: str
    template: Template
    format: Literal["text", "json"]

    def render(self, context: dict[str, Any]) -> Any:
        """The rendered value; MessageError naming the template when it cannot render."""
        try:
            text = self.template.render(context)
        except Exception as exc:  # SecurityError, UndefinedError, errors in filters
            raise MessageError(
                [f"mapping.templates.{self.name}: {type(exc).__name__}: {exc}"]
            ) from exc
        if self.format == "text":
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise MessageError(
                [f"mapping.templates.{self.name}: rendered text is not JSON ({exc.msg} at "
                 f"line {exc.lineno} column {exc.colno})"]
            ) from exc


def compile_templates(
    templates: dict[str, str], formats: dict[str, Literal["text", "json"]]
) -> list[CompiledTemplate]:
    env = environment()
    return [
        CompiledTemplate(name, env.from_string(source), formats.get(name, "text"))
        for name, source in templates.items()
    ]
