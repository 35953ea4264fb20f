"""Settings of the Facebook Custom Audience destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from crossdock.dates import DateOrder
from crossdock.plugins.facebook_audience.const import DEFAULT_API_VERSION, DEFAULT_GRAPH_URL
from crossdock.plugins.facebook_audience.normalize import PHONE_REGIONS, SCHEMA_FIELDS

DEFAULT_SCHEMA = ["EMAIL", "PHONE", "FN", "LN"]


class FacebookAudienceSettings(BaseModel):
    """One Custom Audience of one ad account, and the token that may change it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    audience_id: str = Field(description="the Custom Audience id (digits)")
    access_token: SecretStr = Field(description="a token with ads_management (keep it in ${ENV})")
    app_secret: SecretStr | None = Field(
        default=None, description="the app secret; when set every call carries the time-bound "
                                  "appsecret_proof and appsecret_time"
    )
    api_version: str = Field(default=DEFAULT_API_VERSION,
                             description=f"Graph API version (default {DEFAULT_API_VERSION})")
    graph_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_GRAPH_URL),
        description="Graph API base URL (the contract fake in tests)",
    )
    schema_fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCHEMA), alias="schema",
        description="the customer-file fields to send, in order (EMAIL, PHONE, FN, ...)",
    )
    default_phone_region: str | None = Field(
        default=None,
        description="region (ISO 3166-1 alpha-2, e.g. US, IT) national phone numbers are read "
                    "in when the person has no country; without it they are left out",
    )
    date_order: DateOrder = Field(
        default="month_first",
        description="how a date of birth like 3/2/1997 reads when both numbers could be the "
                    "month: month_first (Meta's reading, March 2) or day_first (3 February)",
    )

    @field_validator("audience_id")
    @classmethod
    def _digits(cls, value: str) -> str:
        value = value.strip()
        if not value.isdigit():
            raise ValueError("must be the audience's numeric id")
        return value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"v\d+\.\d+", value):
            raise ValueError(f"must look like {DEFAULT_API_VERSION}")
        return value

    @field_validator("schema_fields")
    @classmethod
    def _schema(cls, value: list[str]) -> list[str]:
        fields = [f.strip().upper() for f in value]
        unknown = [f for f in fields if f not in SCHEMA_FIELDS]
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; "
                             f"known: {', '.join(SCHEMA_FIELDS)}")
        if not fields:
            raise ValueError("must name at least one field")
        if len(set(fields)) != len(fields):
            raise ValueError("must not repeat a field")
        return fields

    @field_validator("default_phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        region = value.strip().upper()
        if region not in PHONE_REGIONS:
            raise ValueError("must be a region code (ISO 3166-1 alpha-2) such as US, GB or IT")
        return region

    @model_validator(mode="before")
    @classmethod
    def _replaced_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default_phone_country_code" in data:
            raise ValueError(
                "default_phone_country_code: replaced by default_phone_region, a region such "
                "as US or IT (a calling code such as 1, shared by the US, Canada and 23 more, "
                "cannot say how a national number is written there)")
        return data


class FacebookAudienceOptions(BaseModel):
    """`mapping.options` of a facebook_audience destination: mappings/facebook_audience.yaml's,
    with the operator's `mapping: {options: ...}` deep-merged over them."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="schema field -> traits / identities its value is read from, first wins",
    )
    birthday: list[str] = Field(
        default_factory=list,
        description="traits holding a full date of birth (birthDate, the profile's name for "
                    "it), for DOBY / DOBM / DOBD",
    )

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = [f for f in value if f not in SCHEMA_FIELDS]
        if unknown:
            raise ValueError(f"unknown schema field(s) {', '.join(unknown)}; "
                             f"known: {', '.join(SCHEMA_FIELDS)}")
        return value
