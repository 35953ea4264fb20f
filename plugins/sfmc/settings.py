"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Salesforce Marketing Cloud destination."""

from __future__ import annotations

from typing import Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from crossdock.destination import dotted_paths
from crossdock.plugins.sfmc.const import AUTH_BASE, MAX_COLUMNS, SUBDOMAIN, TOKEN_PATH


class SfmcSettings(BaseModel):
    """A Marketing Cloud tenant and the server-to-server API integration (Installed Packages)
    Crossdock authenticates as."""

    model_config = ConfigDict(extra="forbid")

    subdomain: str | None = Field(
        default=None,
        description="the tenant's subdomain (mc563885gzs27c5t9-63k636ttgm): the auth host is "
                    "https://<subdomain>.auth.marketingcloudapis.com")
    auth_base_uri: AnyHttpUrl | None = Field(
        default=None,
        description="the Authorization Base URI Installed Packages shows, instead of the "
                    "subdomain")
    client_id: str = Field(description="the API integration's client ID")
    client_secret: SecretStr = Field(description="the API integration's client secret")
    account_id: str | None = Field(
        default=None,
        description="the MID of the business unit to act in (account_id); default: the "
                    "integration's own")
    scope: str | None = Field(
        default=None,
        description="space-separated permissions to ask for; default: the integration's")

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is not None and not SUBDOMAIN.match(value):
            raise ValueError("letters, digits and - only (the part before "
                             ".auth.marketingcloudapis.com)")
        return value

    @field_validator("account_id")
    @classmethod
    def _mid(cls, value: str | None) -> str | None:
        if value is not None and not value.isdigit():
            raise ValueError("a MID is digits only")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _one_host(self) -> Self:
        if (self.subdomain is None) == (self.auth_base_uri is None):
            raise ValueError("give either subdomain or auth_base_uri (one of them)")
        return self

    @property
    def token_url(self) -> str:
        base = (str(self.auth_base_uri) if self.auth_base_uri is not None
                else AUTH_BASE.format(subdomain=self.subdomain))
        return base.rstrip("/") + TOKEN_PATH


class SfmcOptions(BaseModel):
    """`mapping.options` of an SFMC destination: the shipped mapping.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    model_config = ConfigDict(extra="forbid")

    contact_key: list[str] = Field(
        default_factory=lambda: ["userId"],
        description="where the contact key (subscriber key) is read, first found wins")
    data_extension: str | None = Field(
        default=None,
        description="the external key of the data extension identify rows are upserted into")
    primary_key: str = Field(
        default="ContactKey",
        description="the data extension's primary key column, which holds the contact key")
    columns: dict[str, str | None] = Field(
        default_factory=dict,
        description="trait -> data extension column; only these traits are sent (null: not "
                    "sent)")
    journeys: dict[str, str] = Field(
        default_factory=dict,
        description="event name -> EventDefinitionKey of the Journey Builder entry event")
    default_journey: str | None = Field(
        default=None,
        description="the EventDefinitionKey for events not in journeys (none: such events "
                    "are refused)")

    _paths = field_validator("contact_key")(dotted_paths)

    @field_validator("journeys")
    @classmethod
    def _journeys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value.values():
            _event_definition_key(key)
        return value

    @field_validator("default_journey")
    @classmethod
    def _default(cls, value: str | None) -> str | None:
        return None if value is None else _event_definition_key(value)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        if sum(1 for c in value.values() if c) > MAX_COLUMNS - 1:
            raise ValueError(f"at most {MAX_COLUMNS - 1} columns beside the primary key "
                             f"(Salesforce: {MAX_COLUMNS} columns per call)")
        return value


def _event_definition_key(key: str) -> str:
    if not key.strip() or "." in key:
        raise ValueError("an EventDefinitionKey is not blank and holds no period")
    return key
