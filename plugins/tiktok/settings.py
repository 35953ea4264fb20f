"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
TikTok destination."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from crossdock.destination import ContactOptions, Secret, dotted_paths
from crossdock.plugins.tiktok.const import DEFAULT_BASE_URL

_SOURCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TEST_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TikTokSettings(BaseModel):
    """A TikTok pixel (or event set) and the Events API access token that may write to it."""

    model_config = ConfigDict(extra="forbid")

    access_token: Secret = Field(
        description="the Events API access token generated in Events Manager (the "
                    "Access-Token header)")
    event_source: Literal["web", "app", "offline", "crm"] = Field(
        default="web",
        description="where the events happen: web (event_source_id is the pixel code), "
                    "app (the TikTok App ID), offline or crm (the event set id)")
    event_source_id: str = Field(
        description="the pixel code, TikTok App ID or event set id the events belong to")
    test_event_code: str | None = Field(
        default=None,
        description="a test event code from Events Manager's Test Events tab: TikTok shows "
                    "the events there and does not use them (remove it in production)")
    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_BASE_URL),
        description="the Events API's base URL, ending in /open_api/v1.3 (the contract fake "
                    "in tests)")

    @field_validator("event_source_id")
    @classmethod
    def _source_id(cls, value: str) -> str:
        if not _SOURCE_ID.match(value):
            raise ValueError("a pixel code, App ID or event set id: letters, digits, _ and -")
        return value

    @field_validator("test_event_code")
    @classmethod
    def _test_code(cls, value: str | None) -> str | None:
        if value is not None and not _TEST_CODE.match(value):
            raise ValueError("a test event code from Events Manager: letters, digits, _ "
                             "and -")
        return value

    @field_validator("access_token")
    @classmethod
    def _token(cls, value: Secret) -> Secret:
        # A header value: a space or a line break in it is a copy-paste accident. Never
        # repeat the token.
        if any(c.isspace() for c in value.get_secret_value()):
            raise ValueError("must be the access token: one word without spaces")
        return value

    @field_validator("base_url")
    @classmethod
    def _v13(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if not (value.path or "").rstrip("/").endswith("/open_api/v1.3"):
            raise ValueError("the Events API URL ends in /open_api/v1.3 "
                             "(https://business-api.tiktok.com/open_api/v1.3)")
        return value

    @property
    def root(self) -> str:
        return str(self.base_url).rstrip("/")


class TikTokOptions(ContactOptions):
    """`mapping.options` of a TikTok destination: the shipped mapping.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    external_id: list[str] = Field(
        default_factory=lambda: ["userId"],
        description="where the external_id (your id of the person) is read, first found wins")
    event_id: list[str] = Field(
        default_factory=lambda: ["properties.event_id", "properties.eventId"],
        description="where the event id the site gave the pixel is read, first found wins; "
                    "without one the message id is sent")
    content_type: Literal["product", "product_group"] = Field(
        default="product", description="what each content of an event is")

    _external = field_validator("external_id", "event_id")(dotted_paths)
