"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
Brevo destination."""

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

from crossdock.dates import DateOrder
from crossdock.destination import ContactOptions
from crossdock.plugins.brevo.const import ATTRIBUTE_NAME, DEFAULT_BASE_URL, SMTP_KEY_PREFIX


class DoubleOptIn(BaseModel):
    """Brevo's double opt-in: the confirmation email's template and where its link leads."""

    model_config = ConfigDict(extra="forbid")

    template_id: int = Field(gt=0, description="the id of a Brevo double opt-in template")
    redirection_url: AnyHttpUrl = Field(
        description="the page a person lands on after confirming (the template's "
                    "{{ params.DOIurl }})")


class BrevoSettings(BaseModel):
    """A Brevo account's API key, the lists consenting people join, and double opt-in."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(
        description="an API v3 key (xkeysib-...), sent in the api-key header")
    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_BASE_URL),
        description="the API's URL, ending in /v3 (the contract fake in tests)")
    list_ids: list[int] = Field(
        default_factory=list,
        description="the ids of the lists a person joins when their email consent is granted")
    double_opt_in: DoubleOptIn | None = Field(
        default=None,
        description="join the lists only by confirming Brevo's double opt-in email")
    resubscribe: bool = Field(
        default=False,
        description="clear the email blacklist of a contact who unsubscribed in Brevo when "
                    "their consent is granted here")

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        # Never repeat the key in a message.
        key = value.get_secret_value()
        if not key.strip() or any(c.isspace() for c in key):
            raise ValueError("must be the API key: one word, not blank")
        if key.startswith(SMTP_KEY_PREFIX):
            raise ValueError("this is an SMTP key (xsmtpsib-...); the API needs an API v3 key "
                             "(xkeysib-...) from Brevo's SMTP & API settings")
        return value

    @field_validator("base_url")
    @classmethod
    def _v3(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if not (value.path or "").rstrip("/").endswith("/v3"):
            raise ValueError("the API URL ends in /v3 (https://api.brevo.com/v3)")
        return value

    @field_validator("list_ids")
    @classmethod
    def _lists(cls, value: list[int]) -> list[int]:
        if any(list_id <= 0 for list_id in value):
            raise ValueError("list ids are positive integers (Brevo's list ids)")
        if len(set(value)) != len(value):
            raise ValueError("a list id is named twice")
        return value

    @model_validator(mode="after")
    def _doi_lists(self) -> BrevoSettings:
        if self.double_opt_in is not None and not self.list_ids:
            raise ValueError("double_opt_in needs list_ids: the lists a confirmed person joins "
                             "(Brevo's includeListIds is required)")
        return self

    @property
    def root(self) -> str:
        return str(self.base_url).rstrip("/")


class BrevoOptions(ContactOptions):
    """`mapping.options` of a Brevo destination: plugins/brevo/mapping.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    attributes: dict[str, str | None] = Field(
        default_factory=dict,
        description="trait -> Brevo contact attribute (upper case, defined in the account); "
                    "a trait mapped to null is not sent")
    date_attributes: list[str] = Field(
        default_factory=list,
        description="the attributes of type date: their values are sent as YYYY-MM-DD, the "
                    "only form Brevo keeps (it ignores others)")
    date_order: DateOrder = Field(
        default="month_first",
        description="which of two numbers that could both be the month is the month "
                    "(3/2/1997)")
    sms_attribute: bool = Field(
        default=True, description="send the phone (E.164) as the contact's SMS attribute")
    ext_id: bool = Field(
        default=False,
        description="send the userId as the contact's ext_id, and name event contacts by it "
                    "when they have no email")
    blacklist_without_consent: bool = Field(
        default=True,
        description="blacklist a channel (email, SMS) whose consent is not granted")
    normalize_event_names: bool = Field(
        default=True,
        description="replace characters Brevo refuses in an event name with _ (else the "
                    "message is a dead letter)")

    @field_validator("attributes")
    @classmethod
    def _upper(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        cls._names([name for name in value.values() if name is not None])
        return value

    @field_validator("date_attributes")
    @classmethod
    def _dates(cls, value: list[str]) -> list[str]:
        cls._names(value)
        return value

    @staticmethod
    def _names(names: list[str]) -> None:
        for name in names:
            if name is not None and not ATTRIBUTE_NAME.match(name):
                raise ValueError(f"Brevo attribute names are upper case letters, digits and _ "
                                 f"(FIRSTNAME): {name!r}")
