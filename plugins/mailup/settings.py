"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
MailUp destination."""

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

from crossdock.destination import ContactOptions, dotted_paths
from crossdock.plugins.mailup.const import (
    DEFAULT_BASE_URL,
    DEFAULT_TOKEN_URL,
    MAX_FIELD_ID,
    MIN_FIELD_ID,
)


class MailUpSettings(BaseModel):
    """A MailUp console account, the list recipients are subscribed to, and the OAuth2 grant
    Crossdock gets its access tokens with: a user's name and password (the password grant) or a
    refresh token from an authorization made once (the refresh token grant)."""

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_BASE_URL),
        description="the REST API's console service, ending in /ConsoleService.svc")
    token_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_TOKEN_URL),
        description="MailUp's token endpoint (/Authorization/OAuth/Token)")
    client_id: str = Field(description="the API keys' client ID (the application's)")
    client_secret: SecretStr = Field(description="the API keys' client secret")
    username: str | None = Field(
        default=None, description="the MailUp user (m1234) of the password grant")
    password: SecretStr | None = Field(
        default=None, description="that user's password (the password grant)")
    refresh_token: SecretStr | None = Field(
        default=None,
        description="a refresh token (the refresh token grant), instead of username and "
                    "password; MailUp renews it at each use and the engine keeps the newest")
    list_id: int = Field(ge=1, description="the id of the MailUp list recipients are "
                                           "subscribed to (idList)")
    group_id: int | None = Field(
        default=None, ge=1,
        description="a group of that list recipients are also added to (idGroup)")
    confirm_email: bool = Field(
        default=False,
        description="double opt-in (MailUp's ConfirmEmail): a new subscriber is Pending until "
                    "they confirm the email MailUp sends")

    @field_validator("base_url")
    @classmethod
    def _console(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if not (value.path or "").rstrip("/").endswith("/ConsoleService.svc"):
            raise ValueError("the console service URL ends in /ConsoleService.svc ("
                             + DEFAULT_BASE_URL + ")")
        return value

    @field_validator("client_id", "username")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _one_grant(self) -> Self:
        password = self.username is not None or self.password is not None
        if password and (self.username is None or self.password is None):
            raise ValueError("the password grant takes both username and password")
        if password == (self.refresh_token is not None):
            raise ValueError("give either username and password (the password grant) or "
                             "refresh_token (the refresh token grant), one of them")
        return self

    @property
    def root(self) -> str:
        return str(self.base_url).rstrip("/")


class MailUpOptions(ContactOptions):
    """`mapping.options` of a MailUp destination: the shipped mapping.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    mobile: bool = Field(
        default=True, description="send the phone as MobilePrefix and MobileNumber")
    name: list[str] = Field(
        default_factory=lambda: ["traits.name"],
        description="where MailUp's Name is read, first found wins (empty when none)")
    fields: dict[str, int | None] = Field(
        default_factory=dict,
        description="trait -> MailUp personal data field id (1-39); a trait mapped to null is "
                    "not sent")
    user_id_field: int | None = Field(
        default=None, description="the personal data field id the userId is written to")

    _names = field_validator("name")(dotted_paths)

    @field_validator("fields")
    @classmethod
    def _field_ids(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        for field_id in value.values():
            _field_id(field_id)
        ids = [i for i in value.values() if i is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("two traits map to one field id")
        return value

    @field_validator("user_id_field")
    @classmethod
    def _user_id(cls, value: int | None) -> int | None:
        return _field_id(value)

    @model_validator(mode="after")
    def _user_id_free(self) -> Self:
        if self.user_id_field is not None and self.user_id_field in self.fields.values():
            raise ValueError(f"user_id_field {self.user_id_field} is also a trait's field id")
        return self


def _field_id(value: int | None) -> int | None:
    if value is not None and not MIN_FIELD_ID <= value <= MAX_FIELD_ID:
        raise ValueError(f"a personal data field id is {MIN_FIELD_ID} to {MAX_FIELD_ID} "
                         f"(MailUp's), not {value}")
    return value
