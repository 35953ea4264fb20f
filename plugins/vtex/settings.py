"""Settings (`settings:` in crossdock.yaml) and mapping options (`mapping: {options:}`) of the
VTEX Master Data destination."""

from __future__ import annotations

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from crossdock.destination import ContactOptions
from crossdock.plugins.vtex.const import (
    DEFAULT_DATA_ENTITY,
    DEFAULT_ENVIRONMENT,
    ENTITY_NAME,
    FIELD_NAME,
    HOST_LABEL,
)


class VtexSettings(BaseModel):
    """A VTEX account, the environment of its API host, and the API key that may write its
    documents."""

    model_config = ConfigDict(extra="forbid")

    account_name: str = Field(
        description="the account name in VTEX License Manager: the first label of the API "
                    "host https://{account_name}.{environment}.com.br")
    environment: str = Field(
        default=DEFAULT_ENVIRONMENT,
        description="the environment label of the API host (vtexcommercestable, the one VTEX "
                    "says external integrations use)")
    app_key: SecretStr = Field(
        description="the API key's AppKey, sent as X-VTEX-API-AppKey (keep it in ${ENV})")
    app_token: SecretStr = Field(
        description="the API key's AppToken, sent as X-VTEX-API-AppToken (keep it in ${ENV})")
    data_entity: str = Field(
        default=DEFAULT_DATA_ENTITY,
        description="the data entity the documents are written to: CL, the customer profiles")
    base_url: AnyHttpUrl | None = Field(
        default=None,
        description="another API root instead of https://{account_name}.{environment}.com.br "
                    "(the contract fake in tests)")

    @field_validator("account_name", "environment")
    @classmethod
    def _label(cls, value: str) -> str:
        if not HOST_LABEL.match(value):
            raise ValueError("a host label: letters, digits and -, at most 63 characters "
                             "(the account name as in https://{account}.vtexcommercestable"
                             ".com.br)")
        return value

    @field_validator("app_key", "app_token")
    @classmethod
    def _credential(cls, value: SecretStr) -> SecretStr:
        # Sent as a header: blank or holding spaces or line breaks it can only fail. Never
        # repeat the value.
        secret = value.get_secret_value()
        if not secret.strip() or any(c.isspace() for c in secret):
            raise ValueError("must be the credential: one word, not blank")
        return value

    @field_validator("data_entity")
    @classmethod
    def _entity(cls, value: str) -> str:
        if not ENTITY_NAME.match(value):
            raise ValueError("a data entity acronym or name: a letter, then letters, digits "
                             "and _ (CL)")
        return value

    @property
    def root(self) -> str:
        if self.base_url is not None:
            return str(self.base_url).rstrip("/")
        return f"https://{self.account_name}.{self.environment}.com.br"


class VtexOptions(ContactOptions):
    """`mapping.options` of a VTEX destination: its mapping.yaml's, with the operator's
    `mapping: {options: ...}` deep-merged over them."""

    fields: dict[str, str | None] = Field(
        default_factory=dict,
        description="trait -> document field; only these traits are sent, and each field "
                    "must exist in the data entity (a trait mapped to null is not sent)")
    phone_field: str | None = Field(
        default="phone", description="the field the phone number (E.164) is written to")
    newsletter_field: str | None = Field(
        default="isNewsletterOptIn",
        description="the boolean field the email consent is written to (null: never)")
    user_id_field: str | None = Field(
        default=None, description="the field the userId is written to (null: not sent)")

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        bad = [f for f in value.values() if f is not None and not FIELD_NAME.match(f)]
        if bad:
            raise ValueError(f"field names are letters, digits and _: {bad[0]!r}")
        if "email" in value.values():
            raise ValueError("email is the document's key, read from options.email")
        return value

    @field_validator("phone_field", "newsletter_field", "user_id_field")
    @classmethod
    def _field(cls, value: str | None) -> str | None:
        if value is not None and not FIELD_NAME.match(value):
            raise ValueError("a field name: letters, digits and _")
        return value
