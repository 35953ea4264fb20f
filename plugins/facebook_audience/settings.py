"""Settings of the Facebook Custom Audience destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

import re

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from crossdock.plugins.facebook_audience.const import DEFAULT_API_VERSION, DEFAULT_GRAPH_URL
from crossdock.plugins.facebook_audience.normalize import SCHEMA_FIELDS

DEFAULT_SCHEMA = ["EMAIL", "PHONE", "FN", "LN"]


class FacebookAudienceSettings(BaseModel):
    """One Custom Audience of one ad account, and the token that may change it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    audience_id: str = Field(description="the Custom Audience id (digits)")
    access_token: SecretStr = Field(description="a token with ads_management (keep it in ${ENV})")
    app_secret: SecretStr | None = Field(
        default=None, description="the app secret; when set every call carries appsecret_proof"
    )
    api_version: str = Field(default=DEFAULT_API_VERSION, description="Graph API version")
    graph_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_GRAPH_URL),
        description="Graph API base URL (the contract fake in tests)",
    )
    schema_fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCHEMA), alias="schema",
        description="the customer-file fields to send, in order (EMAIL, PHONE, FN, ...)",
    )
    default_phone_country_code: str | None = Field(
        default=None, description="calling code added to national phone numbers, e.g. '1'"
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
            raise ValueError("must look like v21.0")
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

    @field_validator("default_phone_country_code")
    @classmethod
    def _calling_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().lstrip("+")
        if not code.isdigit() or not 1 <= len(code) <= 3:
            raise ValueError("must be a calling code of 1 to 3 digits, e.g. '1' or '+44'")
        return code


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
        description="traits holding a full date of birth, for DOBY / DOBM / DOBD",
    )

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = [f for f in value if f not in SCHEMA_FIELDS]
        if unknown:
            raise ValueError(f"unknown schema field(s) {', '.join(unknown)}; "
                             f"known: {', '.join(SCHEMA_FIELDS)}")
        return value
