"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Salesforce Commerce Cloud destination."""

from __future__ import annotations

from typing import Literal, Self

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
from crossdock.plugins.sfcc.const import (
    CUSTOM,
    DEFAULT_VERSION,
    HOSTNAME,
    READ_ONLY,
    TOKEN_URL,
    VERSION,
    WRITABLE,
)


class SfccSettings(BaseModel):
    """A B2C Commerce instance and the Account Manager API client Crossdock acts as (its
    Data API permissions granted in Business Manager, Open Commerce API Settings)."""

    model_config = ConfigDict(extra="forbid")

    instance: str | None = Field(
        default=None,
        description="the instance's hostname (zzxy-001.dx.commercecloud.salesforce.com): "
                    "requests go to https://<instance>/s/-/dw/data/...")
    base_url: AnyHttpUrl | None = Field(
        default=None,
        description="the instance's base URL instead of its hostname (the contract fake in "
                    "tests)")
    client_id: str = Field(description="the Account Manager API client's id")
    client_secret: SecretStr = Field(description="the API client's password (secret)")
    token_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(TOKEN_URL),
        description="Account Manager's token endpoint (the contract fake in tests)")
    customer_list: str = Field(
        description="the customer list the customers are in (often the site's id)")
    api_version: str = Field(
        default=DEFAULT_VERSION,
        description="the OCAPI Data API version in the URL (v<YY>_<N>)")

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value is not None and not HOSTNAME.match(value):
            raise ValueError("a hostname only (zzxy-001.dx.commercecloud.salesforce.com), no "
                             "scheme or path")
        return value

    @field_validator("client_id", "customer_list")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not VERSION.match(value):
            raise ValueError("an OCAPI version as the URL names it: v<YY>_<N> (v23_2)")
        return value

    @model_validator(mode="after")
    def _one_host(self) -> Self:
        if (self.instance is None) == (self.base_url is None):
            raise ValueError("give either instance or base_url (one of them)")
        return self

    @property
    def api_base(self) -> str:
        if self.base_url is not None:
            return str(self.base_url).rstrip("/")
        return f"https://{self.instance}"


class SfccOptions(BaseModel):
    """`mapping.options` of an SFCC destination: the shipped mapping.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    model_config = ConfigDict(extra="forbid")

    customer_no: list[str] = Field(
        default_factory=lambda: ["userId"],
        description="where the customer number is read, first found wins")
    attributes: dict[str, str | None] = Field(
        default_factory=dict,
        description="trait -> Customer property (a standard one or c_<custom attribute>); "
                    "only these traits are sent (null: not sent)")
    date_order: Literal["month_first", "day_first"] = Field(
        default="month_first",
        description="how an ambiguous birthday such as 3/2/1990 is read")

    _paths = field_validator("customer_no")(dotted_paths)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for trait, prop in value.items():
            if prop is None:
                continue
            if prop in READ_ONLY:
                raise ValueError(f"{trait}: {prop} is kept by Commerce Cloud itself (read "
                                 "only)")
            if prop not in WRITABLE and not CUSTOM.match(prop):
                raise ValueError(
                    f"{trait}: {prop!r} is no writable Customer property; use one of "
                    f"{', '.join(sorted(WRITABLE))} or c_<custom attribute id>")
        targets = [p for p in value.values() if p]
        doubled = sorted({p for p in targets if targets.count(p) > 1})
        if doubled:
            raise ValueError(f"{', '.join(doubled)}: more than one trait maps to it")
        return value
