"""Settings of the function destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from crossdock.destination import Secret


class FunctionSettings(BaseModel):
    """The operator's JavaScript (a file or inline code, with the `functions.libraries` it
    uses) and the settings it gets as its second argument: `values` and `secrets` in one
    object. Secrets reach the function but never a log, the outbox or an error."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(
        default=None, description="the function's JavaScript file, relative to the config "
                                  "file's folder")
    code: str | None = Field(default=None, description="the function inline, instead of file")
    libraries: list[str] = Field(
        default_factory=list, description="names of functions.libraries evaluated before "
                                          "the function, in order")
    values: dict[str, JsonValue] = Field(
        default_factory=dict, description="settings the function gets (its `settings` "
                                          "argument): endpoints, ids, switches")
    secrets: dict[str, Secret] = Field(
        default_factory=dict, description="settings the function gets beside `values` that "
                                          "are kept out of logs, the outbox and errors "
                                          "(keep them in ${ENV})")

    @model_validator(mode="after")
    def _check(self) -> FunctionSettings:
        if (self.file is None) == (self.code is None):
            raise ValueError("give the function as file: (a path) or code: (inline), one of "
                             "the two")
        both = sorted(set(self.values) & set(self.secrets))
        if both:
            raise ValueError(f"{', '.join(both)}: named in both values and secrets (the "
                             "function gets them in one object)")
        return self
