"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Amplitude destination."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from crossdock.destination import Secret, dotted_paths
from crossdock.plugins.amplitude.const import DEFAULT_MIN_ID_LENGTH, HOSTS


class AmplitudeSettings(BaseModel):
    """An Amplitude project's API key and where its data lives."""

    model_config = ConfigDict(extra="forbid")

    api_key: Secret = Field(
        description="the project's API key (Settings > Projects): sent in the request body")
    region: Literal["us", "eu"] = Field(
        default="us",
        description="the project's data residency: us (api2.amplitude.com) or eu "
                    "(api.eu.amplitude.com); a project in the EU data center refuses the "
                    "default host's requests")
    base_url: AnyHttpUrl | None = Field(
        default=None,
        description="another host instead of the region's (a proxy, or the contract fake)")
    min_id_length: int = Field(
        default=DEFAULT_MIN_ID_LENGTH, ge=1, le=100,
        description="the shortest user_id or device_id the project takes (Amplitude's "
                    "options.min_id_length; 5 unless you changed it)")

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: Secret) -> Secret:
        # The key travels in a JSON and a form body: a space in it is a copy-paste accident.
        # Never repeat the key.
        if any(c.isspace() for c in value.get_secret_value()):
            raise ValueError("must be the project's API key: one word without spaces")
        return value

    @property
    def root(self) -> str:
        return str(self.base_url).rstrip("/") if self.base_url else HOSTS[self.region]


class UserPropertyOptions(BaseModel):
    """Which user property operation each trait is sent with; the rest are $set."""

    model_config = ConfigDict(extra="forbid")

    set_once: list[str] = Field(
        default_factory=list,
        description="traits sent with $setOnce: Amplitude keeps the first value it got")
    add: dict[str, str] = Field(
        default_factory=dict,
        description="user property -> dotted path of a number in the routed payload, sent "
                    "with $add (an increment) on the message that carries it")
    unset: list[str] = Field(
        default_factory=list,
        description="user properties removed ($unset) on every identify")

    @field_validator("add")
    @classmethod
    def _paths(cls, value: dict[str, str]) -> dict[str, str]:
        if value:
            dotted_paths(list(value.values()))
        return value


class AmplitudeOptions(BaseModel):
    """`mapping.options` of an Amplitude destination: the shipped mapping.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    model_config = ConfigDict(extra="forbid")

    user_id: list[str] = Field(
        default_factory=lambda: ["userId"],
        description="where the user_id is read, first found wins")
    device_id: list[str] = Field(
        default_factory=lambda: ["context.device.id", "anonymousId"],
        description="where the device_id is read, first found wins")
    user_properties: UserPropertyOptions = Field(default_factory=UserPropertyOptions)

    _ids = field_validator("user_id", "device_id")(dotted_paths)
