"""Settings of the Mailchimp destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from crossdock.destination import Secret

_DATA_CENTRE = re.compile(r"^[a-z]+\d+$")
_MERGE_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")


def merge_tags(value: dict[str, str]) -> dict[str, str]:
    """A trait -> merge tag map whose tags Mailchimp accepts, or ValueError naming the bad."""
    bad = [tag for tag in value.values() if not _MERGE_TAG.match(tag)]
    if bad:
        raise ValueError(f"merge tags are 1-10 upper-case letters, digits or _: "
                         f"{', '.join(map(repr, bad))}")
    return value


def data_centre(api_key: str) -> str | None:
    """The data centre an API key belongs to: the part after its last '-' ("us21")."""
    _, sep, dc = api_key.strip().rpartition("-")
    return dc if sep and _DATA_CENTRE.match(dc) else None


class MailchimpSettings(BaseModel):
    """One Mailchimp audience (list) and the API key that may change it."""

    model_config = ConfigDict(extra="forbid")

    # Declared before api_key so its validator can read it.
    base_url: AnyHttpUrl | None = Field(
        default=None,
        description="API root instead of https://<dc>.api.mailchimp.com/3.0 (the contract fake)",
    )
    api_key: Secret = Field(description="an API key ending in -<dc>, e.g. …-us21 (${ENV})")
    auth: Literal["basic", "bearer"] = Field(
        default="basic", description="Basic any-user:key, or Bearer (an OAuth access token)"
    )
    list_id: str = Field(description="the audience (list) id")
    merge_fields: dict[str, str] | None = Field(
        default=None,
        description="trait -> merge tag (FNAME, LNAME, PHONE, BIRTHDAY, ADDRESS, ...); "
                    "replaces the mapping's options.merge_fields as a whole",
    )
    double_opt_in: bool = Field(
        default=False, description="new members start pending (a confirmation email) "
                                   "instead of subscribed")
    tag_prefix: str = Field(default="", description="prefix of audience-membership tag names")
    opt_in_trait: str = Field(default="emailOptIn",
                              description="the boolean trait (or consent purpose) for opt-in")
    skip_merge_validation: bool = Field(
        default=True,
        description="members are accepted without values for merge fields the audience "
                    "marks required (a signup form's rule), instead of being refused")

    @field_validator("list_id")
    @classmethod
    def _list(cls, value: str) -> str:
        value = value.strip()
        if not value or "/" in value:
            raise ValueError("must be the audience id (no slashes)")
        return value

    @field_validator("merge_fields")
    @classmethod
    def _tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else merge_tags(value)

    @property
    def api_root(self) -> str:
        """Where requests go: base_url, or the key's data centre."""
        if self.base_url is not None:
            return str(self.base_url).rstrip("/")
        dc = data_centre(self.api_key.get_secret_value())
        if dc is None:
            raise ValueError("api_key: must end in -<data centre> (e.g. -us21), "
                             "or set base_url")
        return f"https://{dc}.api.mailchimp.com/3.0"

    @model_validator(mode="after")
    def _reachable(self) -> MailchimpSettings:
        # Checked after both fields: base_url makes the key's suffix unnecessary.
        self.api_root  # noqa: B018
        return self


class MailchimpOptions(BaseModel):
    """`mapping.options` of a Mailchimp destination: mappings/mailchimp.yaml's, with the
    operator's `mapping: {options: ...}` deep-merged over them."""

    model_config = ConfigDict(extra="forbid")

    email: list[str] = Field(
        default_factory=lambda: ["email"],
        description="traits / identities the member's email is read from, first found wins",
    )
    merge_fields: dict[str, str | None] = Field(
        default_factory=dict,
        description="trait -> merge tag; a trait mapped to null is not sent",
    )
    status: list[str] = Field(
        default_factory=lambda: ["subscriptionStatus"],
        description="traits holding the member's subscription status (subscribed, "
                    "unsubscribed, pending, cleaned, transactional), first found wins; a "
                    "`status` template wins over them",
    )

    @field_validator("email", "status")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [n.strip() for n in value]
        if not names or not all(names):
            raise ValueError("must name at least one trait or identity, none empty")
        return names

    @field_validator("merge_fields")
    @classmethod
    def _tags(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        merge_tags({k: v for k, v in value.items() if v is not None})
        return value
