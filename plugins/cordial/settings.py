"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Cordial destination."""

from __future__ import annotations

import re

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from crossdock.destination import ContactOptions
from crossdock.plugins.cordial.const import DEFAULT_BASE_URL

_ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class CordialSettings(BaseModel):
    """A Cordial account's API URL and key."""

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_BASE_URL),
        description="the account's API URL, ending in /v2: https://api.cordial.io/v2 "
                    "(admin.cordial.io) or https://api.usw2.cordial.io/v2 "
                    "(usw2.admin.cordial.io)")
    api_key: SecretStr = Field(
        description="the account's API key: the Basic auth user name, with an empty password")
    force_subscribe: bool = Field(
        default=False,
        description="subscribe a contact who unsubscribed in Cordial when the person's "
                    "consent is granted here (Cordial's forceSubscribe: CAN-SPAM applies)")

    @field_validator("base_url")
    @classmethod
    def _v2(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if not (value.path or "").rstrip("/").endswith("/v2"):
            raise ValueError("the API URL ends in /v2 (https://api.cordial.io/v2)")
        return value

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        # The key is the Basic auth user name: a colon would end it. Never repeat the key.
        key = value.get_secret_value()
        if not key.strip() or ":" in key or any(c.isspace() for c in key):
            raise ValueError("must be the API key: one word without ':'")
        return value

    @property
    def root(self) -> str:
        return str(self.base_url).rstrip("/")


class CordialOptions(ContactOptions):
    """`mapping.options` of a Cordial destination: mappings/cordial.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    subscribe_status: bool = Field(
        default=True, description="set each channel's subscribe status from the consent")
    attributes: dict[str, str | None] = Field(
        default_factory=dict,
        description="trait -> Cordial contact attribute key; a trait mapped to null is not "
                    "sent")
    user_id_attribute: str | None = Field(
        default=None, description="the contact attribute the userId is written to")

    @field_validator("attributes")
    @classmethod
    def _keys(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        bad = [k for k in value.values() if k is not None and not _ATTRIBUTE_KEY.match(k)]
        if bad:
            raise ValueError(f"attribute keys are letters, digits, _, . and -: {bad[0]!r}")
        return value

    @field_validator("user_id_attribute")
    @classmethod
    def _user_id(cls, value: str | None) -> str | None:
        if value is not None and not _ATTRIBUTE_KEY.match(value):
            raise ValueError("an attribute key: letters, digits, _, . and -")
        return value
