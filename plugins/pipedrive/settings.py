"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Pipedrive destination."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from crossdock.destination import ContactOptions, dotted_paths
from crossdock.plugins.pipedrive.const import (
    COMPANY_DOMAIN,
    CUSTOM_FIELD_KEY,
    DEFAULT_TOKEN_URL,
)

CustomFieldType = Literal["text", "number", "date", "monetary"]
Identifier = Literal["user_id", "email", "phone"]
#: what a person is searched by, in the default order
IDENTIFIERS: tuple[Identifier, ...] = ("user_id", "email", "phone")


def custom_field_key(value: str) -> str:
    if not CUSTOM_FIELD_KEY.match(value):
        raise ValueError(f"{value!r} is not a custom field's API key (40 hexadecimal "
                         "characters: Settings > Data fields, or GET /api/v2/personFields)")
    return value


class PipedriveSettings(BaseModel):
    """A Pipedrive company, the API token that may change its persons, and who owns and sees
    the persons created."""

    model_config = ConfigDict(extra="forbid")

    company_domain: str | None = Field(
        default=None,
        description="the company's subdomain: acme for https://acme.pipedrive.com")
    base_url: AnyHttpUrl | None = Field(
        default=None,
        description="the API's root instead of https://<company_domain>.pipedrive.com (the "
                    "contract fake)")
    api_token: SecretStr | None = Field(
        default=None,
        description="a user's personal API token, sent in the x-api-token header (auth: "
                    "api_token)")
    auth: Literal["api_token", "oauth"] = Field(
        default="api_token",
        description="api_token (a personal API token), or oauth (an app's refresh token: the "
                    "engine gets access tokens, the API host comes with them as api_domain)")
    client_id: str | None = Field(
        default=None, description="the app's client ID (auth: oauth)")
    client_secret: SecretStr | None = Field(
        default=None, description="the app's client secret (auth: oauth)")
    refresh_token: SecretStr | None = Field(
        default=None,
        description="the refresh token of the app's installation (auth: oauth); Pipedrive "
                    "answers a new one with each access token and the engine keeps the newest")
    token_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_TOKEN_URL),
        description="Pipedrive's OAuth token endpoint (auth: oauth)")
    owner_id: int | None = Field(
        default=None, ge=1, description="the user who owns the persons created (default: the "
                                        "token's user)")
    visible_to: Literal[1, 3, 5, 7] | None = Field(
        default=None,
        description="who sees the persons created: 1 owner & followers, 3 entire company, 5 "
                    "owner's visibility group, 7 entire company (groups)")
    marketing_status: bool = Field(
        default=False,
        description="set persons' marketing_status from the email consent (the company must "
                    "use Pipedrive's Campaigns)")

    @field_validator("company_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not COMPANY_DOMAIN.match(value):
            raise ValueError("the company domain is the subdomain only (acme for "
                             "acme.pipedrive.com): lower-case letters, digits and -")
        return value

    @field_validator("api_token", "refresh_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        token = None if value is None else value.get_secret_value()
        if token is not None and (not token.strip() or any(c.isspace() for c in token)):
            raise ValueError("must be the token: one word, not empty")
        return value

    @model_validator(mode="after")
    def _auth(self) -> PipedriveSettings:
        oauth = {"client_id": self.client_id, "client_secret": self.client_secret,
                 "refresh_token": self.refresh_token}
        if self.auth == "oauth":
            missing = [k for k, v in oauth.items() if v is None]
            if missing:
                raise ValueError("auth oauth takes client_id, client_secret and refresh_token"
                                 f" (missing: {', '.join(missing)})")
            if self.api_token is not None:
                raise ValueError("auth oauth uses no api_token: remove it (or set auth: "
                                 "api_token)")
            if self.company_domain is not None or self.base_url is not None:
                # The token answer names the company's API host (api_domain).
                raise ValueError("auth oauth reaches the API host the token answer names "
                                 "(api_domain): remove company_domain and base_url")
            return self
        if self.api_token is None:
            raise ValueError("api_token is required (or set auth: oauth with an app's "
                             "client_id, client_secret and refresh_token)")
        given = [k for k, v in oauth.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: for auth oauth only (auth is api_token)")
        if self.company_domain is None and self.base_url is None:
            raise ValueError("company_domain (or base_url) is required")
        return self

    @property
    def root(self) -> str:
        """The API's root for the API token (auth oauth: "", the URLs stay relative and the
        engine joins them onto the token answer's api_domain)."""
        if self.auth == "oauth":
            return ""
        if self.base_url is not None:
            return str(self.base_url).rstrip("/")
        return f"https://{self.company_domain}.pipedrive.com"


class CustomField(BaseModel):
    """A Pipedrive custom field a trait is written to, and how its value is sent."""

    model_config = ConfigDict(extra="forbid")

    key: str
    type: CustomFieldType = "text"
    #: a monetary field's currency when the value is a bare number
    currency: str | None = None

    _key = field_validator("key")(custom_field_key)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and not (len(value) == 3 and value.isalpha()):
            raise ValueError("an ISO 4217 currency code (EUR)")
        return None if value is None else value.upper()


class PipedriveOptions(ContactOptions):
    """`mapping.options` of a Pipedrive destination: mappings/pipedrive.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    match: list[Identifier] = Field(
        default_factory=lambda: list(IDENTIFIERS),
        description="what a person is searched by, in this order; the first the message has "
                    "wins (user_id needs user_id_field)")
    user_id_field: str | None = Field(
        default=None, description="the custom field (API key) holding the userId")
    name: list[str] = Field(default_factory=lambda: ["traits.name"],
                            description="where a person's full name is read")
    first_name: list[str] = Field(default_factory=lambda: ["traits.firstName"])
    last_name: list[str] = Field(default_factory=lambda: ["traits.lastName"])
    custom_fields: dict[str, str | CustomField | None] = Field(
        default_factory=dict,
        description="trait -> custom field API key, or {key, type, currency}; null: not sent")
    events: Literal["note", "activity"] = Field(
        default="note", description="what a track event becomes on the person")
    activity_type: str = Field(default="task",
                               description="the activity type of events sent as activities")
    activities: dict[str, str] = Field(
        default_factory=dict,
        description="event name -> activity type: these events are activities whatever "
                    "`events` says")
    create_person_for_events: bool = Field(
        default=True, description="an event of a person Pipedrive does not have creates them")
    search_again_after: float = Field(
        default=0.0, ge=0.0, le=3600.0,
        description="seconds to wait and search once more before creating a person the first "
                    "search did not find (Pipedrive's search index lags its writes); 0: "
                    "create at once")

    _names = field_validator("name", "first_name", "last_name")(dotted_paths)

    @field_validator("match")
    @classmethod
    def _match(cls, value: list[Identifier]) -> list[Identifier]:
        if not value or len(set(value)) != len(value):
            raise ValueError("name each of user_id, email, phone at most once, at least one")
        return value

    @field_validator("user_id_field")
    @classmethod
    def _user_id_field(cls, value: str | None) -> str | None:
        return None if value is None else custom_field_key(value)

    @field_validator("custom_fields")
    @classmethod
    def _fields(cls, value: dict[str, str | CustomField | None]
                ) -> dict[str, str | CustomField | None]:
        for trait, field in value.items():
            if isinstance(field, str):
                try:
                    custom_field_key(field)
                except ValueError as exc:
                    raise ValueError(f"{trait}: {exc}") from None
        return value

    @field_validator("activity_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an activity type's key (call, meeting, task, ...)")
        return value

    @model_validator(mode="after")
    def _user_id_needs_field(self) -> PipedriveOptions:
        if "user_id" in self.match and self.user_id_field is None:
            self.match = [m for m in self.match if m != "user_id"]
        if not self.match:
            raise ValueError("match: user_id alone needs user_id_field")
        return self

    def field(self, trait: str) -> CustomField | None:
        """The custom field `trait` is written to, if any."""
        spec = self.custom_fields.get(trait)
        return CustomField(key=spec) if isinstance(spec, str) else spec
