"""Settings of the generic webhook destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

import ipaddress
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
from crossdock.plugins.webhook.signing import secret_key

_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def private_host(host: str) -> bool:
    """Whether a URL host names this machine or a private, link-local or reserved network.

    Only literal addresses and local names can be judged without DNS; a name that resolves to
    a private address passes (an egress firewall is the real guard against that)."""
    host = host.strip("[]").rstrip(".").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
            or ip.is_unspecified or ip.is_multicast)


class WebhookSettings(BaseModel):
    """Where and how to POST routed messages."""

    model_config = ConfigDict(extra="forbid")

    # Declared before `url` so the url validator can read it.
    allow_private_network: bool = Field(
        default=False, description="allow loopback and private addresses (local receivers, tests)"
    )
    url: AnyHttpUrl = Field(description="the receiver's http(s) URL")
    method: Literal["POST", "PUT"] = Field(default="POST", description="the HTTP method")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra request headers (e.g. an API key)"
    )
    secret: SecretStr | None = Field(
        default=None, description="HMAC key; requests are signed when set (whsec_<base64> or text)"
    )
    signature_style: Literal["standard", "x-signature", "both"] = Field(
        default="standard", description="which signature headers a signed request carries"
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
    def _secret_usable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            if not value.get_secret_value():
                raise ValueError("must not be empty (leave it out to send unsigned requests)")
            secret_key(value.get_secret_value())  # a bad whsec_ value fails here, not at send
        return value

    @field_validator("url")
    @classmethod
    def _ssrf_guard(cls, value: AnyHttpUrl, info: ValidationInfo) -> AnyHttpUrl:
        if not info.data.get("allow_private_network") and private_host(value.host or ""):
            raise ValueError(
                f"{value.host} is a loopback or private address; set "
                "allow_private_network: true to send there"
            )
        return value

    @field_validator("signature_style")
    @classmethod
    def _style_needs_secret(cls, value: str, info: ValidationInfo) -> str:
        # A secret that failed its own check is reported there, not here too.
        if value != "standard" and "secret" in info.data and info.data["secret"] is None:
            raise ValueError(f"{value!r} needs a secret")
        return value
