"""Settings of the generic webhook destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from crossdock.plugins.webhook.const import RESERVED_HEADERS
from crossdock.plugins.webhook.signing import standard_key, x_signature_key


class WebhookSettings(BaseModel):
    """Where and how to POST routed messages. Whether `url` may be a private address is the
    engine's egress guard's to say (`delivery.allow_private_network`, docs/delivery.md)."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="the receiver's http(s) URL")
    method: Literal["POST", "PUT"] = Field(default="POST", description="the HTTP method")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra request headers (e.g. an API key)"
    )
    # Declared before `secret` so the secret's validator knows which formats it must meet.
    signature_style: Literal["standard", "x-signature", "both"] = Field(
        default="standard", description="which signature headers a signed request carries"
    )
    secret: SecretStr | None = Field(
        default=None, validate_default=True,
        description="HMAC key; requests are signed when set. Standard Webhooks: the base64 "
                    "of the key, optionally whsec_-prefixed; X-Signature alone: any text",
    )
    x_signature_digest: Literal["sha1", "sha256"] = Field(
        default="sha1", description="hash of the X-Signature HMAC (Segment uses sha1)"
    )
    batch: bool = Field(
        default=False, description='send {"batch": [...]} of up to delivery.batch_size messages'
    )

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(name for name in value if name.lower() in RESERVED_HEADERS)
        if clash:
            raise ValueError(
                f"may not set {', '.join(clash)}: Crossdock sets these headers itself"
            )
        return value

    @field_validator("secret")
    @classmethod
    def _secret_usable(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # Errors never repeat the secret.
        style = info.data.get("signature_style")
        if value is None:
            if style in ("x-signature", "both"):
                raise ValueError(f"signature_style {style!r} needs a secret")
            return value
        if not value.get_secret_value():
            raise ValueError("must not be empty (leave it out to send unsigned requests)")
        # A secret the receiver's Standard Webhooks library would read differently fails
        # here, not at send time.
        if style in ("standard", "both"):
            standard_key(value.get_secret_value())
        else:
            x_signature_key(value.get_secret_value())
        return value
