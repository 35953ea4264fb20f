"""The `functions:` entry of crossdock.yaml and a destination's `transform:`.

    functions:
      timeout: 1s            # per call
      memory_mb: 64          # per isolate
      libraries:             # code shared by functions, evaluated before each that lists it
        hashing: {file: functions/hashing.js}
    destinations:
      crm:
        plugin: webhook
        transform: {file: functions/tidy.js, libraries: [hashing]}

Paths are relative to the config file's folder. A function is compiled when the config loads,
so `crossdock validate` names a syntax error by its file and line.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crossdock.durations import parse_duration
from crossdock.functions.runtime import (
    FunctionCode,
    FunctionLoadError,
    FunctionRunner,
    Limits,
    LoadedFunction,
)

#: the entry point of a transformation (RudderStack's name, so its examples run unchanged)
TRANSFORM_ENTRY = "transformEvent"
#: the entry point of the `function` destination's JavaScript (its plugin's Script.entry)
DESTINATION_ENTRY = "onEvent"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Strict):
    """JavaScript from a file (`file`, relative to the config) or written inline (`code`)."""

    file: str | None = None
    code: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Source:
        if (self.file is None) == (self.code is None):
            raise ValueError("give the function as file: (a path) or code: (inline), one of "
                             "the two")
        return self

    def read(self, base_dir: Path) -> str:
        """The code; OSError when the file cannot be read."""
        if self.code is not None:
            return self.code
        assert self.file is not None
        return (base_dir / self.file).read_text()

    def label(self, default: str) -> str:
        return self.file or default


class TransformConfig(Source):
    """A destination's `transform:`: the function and the libraries it uses, in order."""

    libraries: list[str] = Field(default_factory=list)


class FunctionsConfig(_Strict):
    """The top-level `functions:` entry: limits and shared libraries."""

    timeout: float = Field(default=1.0, gt=0, le=60, description="seconds per call")
    memory_mb: int = Field(default=64, ge=8, le=2048, description="V8 heap per isolate")
    libraries: dict[str, Source] = Field(default_factory=dict)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @property
    def limits(self) -> Limits:
        return Limits(self.timeout, self.memory_mb)


_runners: dict[Limits, FunctionRunner] = {}
_runners_lock = threading.Lock()


def runner_for(limits: Limits) -> FunctionRunner:
    """The process's runner for these limits: one host process however many configs load."""
    with _runners_lock:
        runner = _runners.get(limits)
        if runner is None:
            runner = _runners[limits] = FunctionRunner(limits)
        return runner


def load_function(
    source: Source, libraries: list[str], functions: FunctionsConfig, base_dir: Path,
    path: str, entries: tuple[str, ...],
) -> tuple[LoadedFunction | None, list[str]]:
    """Read and compile a function with its libraries; (None, problems as "path: rule")
    when it cannot be."""
    problems: list[str] = []
    try:
        code = source.read(base_dir)
    except OSError as exc:
        return None, [f"{path}.file: cannot read {base_dir / (source.file or '')} "
                      f"({exc.strerror})"]
    shared: list[tuple[str, str]] = []
    for index, name in enumerate(libraries):
        library = functions.libraries.get(name)
        if library is None:
            known = ", ".join(sorted(functions.libraries)) or "none"
            problems.append(f"{path}.libraries.{index}: unknown library {name!r} "
                            f"(functions.libraries has: {known})")
            continue
        try:
            shared.append((library.label(f"library {name}"), library.read(base_dir)))
        except OSError as exc:
            problems.append(f"functions.libraries.{name}.file: cannot read "
                            f"{base_dir / (library.file or '')} ({exc.strerror})")
    if problems:
        return None, problems
    try:
        loaded = runner_for(functions.limits).load(
            FunctionCode(source.label(path), code, tuple(shared)), entries)
    except FunctionLoadError as exc:
        return None, [f"{path}: {exc}"]
    return loaded, []
