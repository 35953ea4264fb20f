"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Attentive destination."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from crossdock.destination import ContactOptions
from crossdock.plugins.attentive.const import DEFAULT_BASE_URL

_SIGN_UP_SOURCE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

EcommerceKind = Literal["product-view", "add-to-cart", "purchase"]
ItemField = Literal["productId", "productVariantId", "name", "price", "currency", "quantity",
                    "productImage", "productUrl"]


class AttentiveSettings(BaseModel):
    """An Attentive account's API key, and the sign-up unit subscriptions go through."""

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_BASE_URL),
        description="the API's root (default https://api.attentivemobile.com; the contract "
                    "fake's address in tests and the demo)",
    )
    api_key: SecretStr = Field(description="the private app's API key, sent as a Bearer token")
    sign_up_source_id: str | None = Field(
        default=None,
        description="the API sign-up unit subscriptions are made through (the ID column of "
                    "Sign-up Units in Attentive); subscribe events need it",
    )
    single_opt_in: bool = Field(
        default=False,
        description="subscribe without Attentive's confirmation text (the unit must allow it)")

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        # A Bearer token is one word; the message never repeats it.
        key = value.get_secret_value()
        if not key.strip() or any(c.isspace() for c in key):
            raise ValueError("must be the API key: one word, not empty")
        return value

    @field_validator("sign_up_source_id")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is not None and not _SIGN_UP_SOURCE.match(value):
            raise ValueError("a sign-up source id is the unit's ID: letters, digits, - and _")
        return value

    @property
    def root(self) -> str:
        return str(self.base_url).rstrip("/")


class AttentiveOptions(ContactOptions):
    """`mapping.options` of an Attentive destination: mappings/attentive.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    client_user_id: bool = Field(
        default=True, description="send the userId as externalIdentifiers.clientUserId")
    subscribe_events: list[str] = Field(
        default_factory=lambda: ["User Subscribed"],
        description="track events that subscribe the person (their consented channels)")
    unsubscribe_events: list[str] = Field(
        default_factory=lambda: ["User Unsubscribed"],
        description="track events that unsubscribe the person")
    ecommerce: dict[str, EcommerceKind] = Field(
        default_factory=dict, description="event name -> Attentive e-commerce event")
    item: dict[ItemField, list[str]] = Field(
        default_factory=dict,
        description="Attentive item field -> the product keys it is read from, first found "
                    "wins")
    not_attributes: list[str] = Field(
        default_factory=list,
        description="traits never sent as custom attributes (identifiers, opt-ins)")

    @field_validator("subscribe_events", "unsubscribe_events")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("event names must not be empty")
        return value

    @field_validator("ecommerce")
    @classmethod
    def _ecommerce(cls, value: dict[str, EcommerceKind]) -> dict[str, EcommerceKind]:
        if any(not name.strip() for name in value):
            raise ValueError("event names must not be empty")
        return value

    @field_validator("item")
    @classmethod
    def _item(cls, value: dict[ItemField, list[str]]) -> dict[ItemField, list[str]]:
        for field, keys in value.items():
            if not keys or any(not k.strip() for k in keys):
                raise ValueError(f"{field}: name at least one product key, none empty")
        return value
