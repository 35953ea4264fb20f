"""Crossdock's exceptions.

    CrossdockError
    ├── ConfigError            the config file or a destination's settings are invalid
    ├── MessageError           one message failed validation (names the field and the rule)
    ├── PluginError            a plugin could not be loaded or misbehaved
    └── OutboxError            the outbox cannot be opened or upgraded
"""

from __future__ import annotations


class CrossdockError(Exception):
    """Base of every error Crossdock raises on purpose."""


class ConfigError(CrossdockError):
    """The config is invalid; `problems` lists each one as "path: message"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


class MessageError(CrossdockError):
    """A message is invalid; `problems` lists each one as "field: rule"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class PluginError(CrossdockError):
    """A plugin could not be loaded, or it returned something the engine cannot use."""


class OutboxError(CrossdockError):
    """The outbox could not be opened, upgraded or written."""
