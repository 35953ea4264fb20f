"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Google Ads destination."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from crossdock.destination import ContactOptions, dotted_paths
from crossdock.plugins.google_ads.const import API_BASE, CUSTOMER_ID, TOKEN_URL, VERSION

Consent = Literal["GRANTED", "DENIED", "UNSPECIFIED"]


def _customer_id(value: str | None) -> str | None:
    """A customer id as the UI shows it (123-456-7890) or as digits, kept as ten digits."""
    if value is None:
        return None
    digits = value.replace("-", "").strip()
    if not CUSTOMER_ID.match(digits):
        raise ValueError("a Google Ads customer id: ten digits (123-456-7890)")
    return digits


class GoogleAdsSettings(BaseModel):
    """The Google Ads account written to, the manager it is reached through, and the OAuth2
    client and refresh token Crossdock authenticates with."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(description="the account (customer) id, 123-456-7890")
    login_customer_id: str | None = Field(
        default=None,
        description="the manager account's id when the account is reached through it (sent as "
                    "the login-customer-id header)")
    developer_token: SecretStr = Field(description="the API developer token (secret)")
    client_id: str = Field(description="the OAuth2 client's id")
    client_secret: SecretStr = Field(description="the OAuth2 client's secret")
    refresh_token: SecretStr = Field(
        description="a refresh token of a user with access to the account, scope "
                    "https://www.googleapis.com/auth/adwords")
    api_version: str = Field(default="v26", description="the API version in the URL (vNN)")
    base_url: AnyHttpUrl = Field(default=AnyHttpUrl(API_BASE),
                                 description="the API's base URL (the contract fake in tests)")
    token_url: AnyHttpUrl = Field(default=AnyHttpUrl(TOKEN_URL),
                                  description="Google's token endpoint (the fake in tests)")

    _ids = field_validator("customer_id", "login_customer_id")(_customer_id)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not VERSION.match(value):
            raise ValueError("an API version as the URL names it: vNN (v26)")
        return value

    @field_validator("client_id")
    @classmethod
    def _client(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class GoogleAdsOptions(ContactOptions):
    """`mapping.options` of a Google Ads destination (where email and phone are read, and the
    phone region, come from ContactOptions)."""

    user_lists: dict[str, str] = Field(
        default_factory=dict,
        description="audience name -> the id of its Customer Match user list")
    first_name: list[str] = Field(default_factory=lambda: ["traits.firstName"])
    last_name: list[str] = Field(default_factory=lambda: ["traits.lastName"])
    country: list[str] = Field(default_factory=lambda: ["traits.country",
                                                        "traits.address.country"])
    postal_code: list[str] = Field(default_factory=lambda: ["traits.postalCode",
                                                            "traits.address.postalCode"])
    ad_user_data: Consent = Field(
        default="UNSPECIFIED",
        description="the consent for ad user data the Customer Match jobs declare")
    ad_personalization: Consent = Field(
        default="UNSPECIFIED",
        description="the consent for ad personalization the Customer Match jobs declare")
    conversion_actions: dict[str, str] = Field(
        default_factory=dict,
        description="event name -> the id of its click conversion action")
    gclid: list[str] = Field(default_factory=lambda: ["properties.gclid", "context.gclid"])
    value: list[str] = Field(default_factory=lambda: ["properties.value",
                                                      "properties.revenue"])
    currency: list[str] = Field(default_factory=lambda: ["properties.currency"])
    order_id: list[str] = Field(default_factory=lambda: ["properties.order_id",
                                                         "properties.orderId"])

    _more_paths = field_validator("first_name", "last_name", "country", "postal_code",
                                  "gclid", "value", "currency", "order_id")(dotted_paths)

    @field_validator("user_lists", "conversion_actions")
    @classmethod
    def _ids(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ident in value.items():
            if not str(ident).isdigit():
                raise ValueError(f"{name}: an id is digits only (the number in the UI or "
                                 "the resource name)")
        return value
