"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Shopify destination."""

from __future__ import annotations

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from crossdock.destination import ContactOptions
from crossdock.plugins.shopify.const import (
    API_VERSION,
    DEFAULT_API_VERSION,
    MAX_TAG_LENGTH,
    OPT_IN_LEVELS,
    SHOP_NAME,
)


class ShopifySettings(BaseModel):
    """A store, the API version pinned for it, and an Admin API access token."""

    model_config = ConfigDict(extra="forbid")

    shop: str = Field(description="the store's myshopify.com name: acme for "
                                  "acme.myshopify.com")
    api_version: str = Field(
        default=DEFAULT_API_VERSION,
        description="the GraphQL Admin API version pinned (YYYY-MM of a quarter's release)")
    access_token: SecretStr = Field(
        description="the Admin API access token (shpat_...), sent as X-Shopify-Access-Token; "
                    "scopes write_customers and read_customers")
    tag_prefix: str = Field(default="", description="put before each audience's tag")
    opt_in_level: str = Field(
        default="SINGLE_OPT_IN",
        description="the marketing opt-in level sent with a granted consent (M3AAWG)")
    base_url: AnyHttpUrl | None = Field(
        default=None, description="another API root instead of https://{shop}.myshopify.com "
                                  "(the contract fake in tests)")

    @field_validator("shop")
    @classmethod
    def _shop(cls, value: str) -> str:
        name = value.strip().lower().removesuffix(".myshopify.com")
        if not SHOP_NAME.match(name):
            raise ValueError("the store's myshopify.com name: lower-case letters, digits and -")
        return name

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not API_VERSION.match(value):
            raise ValueError("a stable version YYYY-MM released in January, April, July or "
                             "October (2025-10)")
        return value

    @field_validator("access_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if not token.strip() or any(c.isspace() for c in token):
            raise ValueError("must be the access token: one word, not blank")
        return value

    @field_validator("tag_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if "," in value or len(value) > MAX_TAG_LENGTH // 2:
            raise ValueError("no comma (Shopify splits tags on commas), and short")
        return value

    @field_validator("opt_in_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value not in OPT_IN_LEVELS:
            raise ValueError(f"one of {', '.join(sorted(OPT_IN_LEVELS))}")
        return value

    @property
    def root(self) -> str:
        if self.base_url is not None:
            return str(self.base_url).rstrip("/")
        return f"https://{self.shop}.myshopify.com"


class ShopifyOptions(ContactOptions):
    """`mapping.options` of a Shopify destination."""

    first_name: list[str] = Field(default_factory=lambda: ["traits.firstName"],
                                  description="where the first name is read")
    last_name: list[str] = Field(default_factory=lambda: ["traits.lastName"],
                                 description="where the last name is read")
    locale: list[str] = Field(default_factory=list, description="where the locale is read")
