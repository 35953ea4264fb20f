"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Twilio destination."""

from __future__ import annotations

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from crossdock.destination import ContactOptions
from crossdock.phones import PhoneError, e164
from crossdock.plugins.twilio.const import (
    ACCOUNT_SID,
    ALPHANUMERIC_SENDER,
    API_KEY_SID,
    DEFAULT_BASE_URL,
    MAX_CALLBACK_LENGTH,
    MESSAGING_SERVICE_SID,
    SHORT_CODE,
)


class TwilioSettings(BaseModel):
    """A Twilio account, the credentials that may send from it, and the sender."""

    model_config = ConfigDict(extra="forbid")

    account_sid: str = Field(description="the account's SID (AC...): the Messages URL names it")
    auth_token: SecretStr | None = Field(
        default=None, description="the account's auth token (Basic auth with the account SID)")
    api_key_sid: str | None = Field(
        default=None, description="an API key's SID (SK...): Basic auth with its secret, "
                                  "instead of the auth token (Twilio's advice)")
    api_key_secret: SecretStr | None = Field(default=None, description="the API key's secret")
    from_number: str | None = Field(
        default=None, description="the sender: a Twilio number in E.164, a short code or an "
                                  "alphanumeric sender id (Twilio's From)")
    messaging_service_sid: str | None = Field(
        default=None, description="a Messaging Service (MG...) that picks the sender")
    status_callback: AnyHttpUrl | None = Field(
        default=None, description="where Twilio posts each message's status changes")
    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_BASE_URL),
        description="the API's host (the contract fake in tests)")

    @field_validator("account_sid")
    @classmethod
    def _account(cls, value: str) -> str:
        if not ACCOUNT_SID.match(value):
            raise ValueError("an account SID is AC and 32 hexadecimal digits")
        return value

    @field_validator("api_key_sid")
    @classmethod
    def _api_key(cls, value: str | None) -> str | None:
        if value is not None and not API_KEY_SID.match(value):
            raise ValueError("an API key SID is SK and 32 hexadecimal digits")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and not MESSAGING_SERVICE_SID.match(value):
            raise ValueError("a Messaging Service SID is MG and 32 hexadecimal digits")
        return value

    @field_validator("auth_token", "api_key_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        # The secret is the Basic password: blank or spaced it can never authenticate. Never
        # repeat it.
        if value is not None and (not value.get_secret_value().strip()
                                  or any(c.isspace() for c in value.get_secret_value())):
            raise ValueError("must be one word, not blank")
        return value

    @field_validator("from_number")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        if value is None or SHORT_CODE.match(value) or ALPHANUMERIC_SENDER.match(value):
            return value
        try:
            return e164(value)
        except PhoneError as exc:
            raise ValueError(f"a Twilio number in E.164 (+15017122661), a short code or an "
                             f"alphanumeric sender id of at most 11 characters ({exc})") from None

    @field_validator("status_callback")
    @classmethod
    def _callback(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is None:
            return value
        if "_" in (value.host or ""):
            raise ValueError("Twilio refuses a StatusCallback host with underscores")
        if len(str(value)) > MAX_CALLBACK_LENGTH:
            raise ValueError(f"at most {MAX_CALLBACK_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> TwilioSettings:
        key = (self.api_key_sid, self.api_key_secret)
        if self.auth_token is None and None in key:
            raise ValueError("credentials: set auth_token, or api_key_sid and api_key_secret")
        if self.auth_token is not None and key != (None, None):
            raise ValueError("credentials: set auth_token or an API key, not both")
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("credentials: api_key_sid and api_key_secret go together")
        if self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("sender: set from_number or messaging_service_sid (Twilio needs "
                             "a From or a MessagingServiceSid)")
        return self

    @property
    def root(self) -> str:
        return str(self.base_url).rstrip("/")

    def credentials(self) -> tuple[str, str]:
        """The Basic auth user and password: the API key's, else the account's."""
        if self.api_key_sid is not None and self.api_key_secret is not None:
            return self.api_key_sid, self.api_key_secret.get_secret_value()
        assert self.auth_token is not None
        return self.account_sid, self.auth_token.get_secret_value()


class TwilioOptions(ContactOptions):
    """`mapping.options` of a Twilio destination: plugins/twilio/mapping.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""
