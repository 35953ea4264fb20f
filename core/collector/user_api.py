"""The user API: /v1/accounts/{account}/users and /events bodies, and the messages they become.

A user update becomes an `identify` message (firstName etc. as traits, opt-ins as consent
purposes email / sms / whatsapp); an event becomes a `track` message. Unknown fields are
refused, so a typo never silently drops data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from crossdock.models import NoNul, TextId
from crossdock.profiles.attributes import SYSTEM_ALIASES, SYSTEM_ATTRIBUTES

BIRTH_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_BIRTH_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: `null` removes the attribute (docs/profiles.md), so it is a value like the others
AttributeValue = (
    StrictBool | StrictInt | StrictFloat | StrictStr | list[Any] | dict[str, Any] | None
)


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid")

    # The Segment endpoints' id rule (1 to 100 characters, no NUL), but a string only: every
    # field of this API is strictly typed (a Segment message takes a numeric user id).
    user_id: TextId | None = None
    anonymous_id: TextId | None = None

    @model_validator(mode="after")
    def _someone(self) -> _Body:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("userId or anonymousId: one is required")
        if self.user_id is not None:
            # The spec: with both, anonymousId is ignored.
            self.anonymous_id = None
        return self

    def ids(self) -> dict[str, str]:
        if self.user_id is not None:
            return {"userId": self.user_id}
        assert self.anonymous_id is not None
        return {"anonymousId": self.anonymous_id}


def _check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        if SYSTEM_ALIASES.get(name, name) in SYSTEM_ATTRIBUTES:
            raise ValueError(f"{name!r} is a system attribute; send it as the top-level field "
                             f"{SYSTEM_ALIASES.get(name, name)!r}")
    return value


class UserUpdate(_Body):
    """Body of POST /v1/accounts/{account}/users."""

    # No length limit here: the profile store truncates strings past
    # profiles.attributes.max_string_length on every entry point, as it does a Segment
    # identify's, and records the truncation (a 422 here would lose the whole update).
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None
    birth_date: StrictStr | None = Field(
        default=None, description="yyyy-MM-ddTHH:mm:ss±hhmm, e.g. 1990-05-17T00:00:00+0000"
    )
    gender: Literal["male", "female", "other"] | None = None
    # An identity (profiles are joined by it): no NUL, as for the ids.
    email: Annotated[StrictStr, NoNul] | None = Field(default=None, max_length=254)
    phone: StrictStr | None = Field(default=None, description="E.164, e.g. +14155550100")
    email_opt_in: StrictBool | None = None
    sms_opt_in: StrictBool | None = None
    whatsapp_opt_in: StrictBool | None = None
    company: StrictStr | None = None
    hashed_email: StrictStr | None = Field(default=None, max_length=256)
    hashed_phone: StrictStr | None = Field(default=None, max_length=256)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    @field_validator("birth_date")
    @classmethod
    def _birth_date(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not _BIRTH_DATE.match(v):
            raise ValueError("must be yyyy-MM-ddTHH:mm:ss±hhmm, e.g. 1990-05-17T00:00:00+0000")
        try:
            datetime.strptime(v, BIRTH_DATE_FORMAT)
        except ValueError as exc:
            raise ValueError(f"not a real date and time ({exc})") from exc
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is not None and not _E164.match(v):
            raise ValueError("must be an E.164 number: + then up to 15 digits, e.g. +14155550100")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("must be an email address like name@example.com")
        return v

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_attributes(v)

    def to_message(self, account: str, timestamp: str) -> dict[str, Any]:
        """The identify message this update becomes."""
        # A field sent as null removes the attribute; a field left out leaves it as it was.
        sent = self.model_fields_set - {"user_id", "anonymous_id", "attributes"}
        fields = self.model_dump(by_alias=True, include=sent)
        traits = {**self.attributes, **fields}
        # An opt-in left out leaves the person's as it was; never sent (or removed with
        # null), the channel's default applies (profiles.consent_defaults).
        return {"type": "identify", **self.ids(), "traits": traits, "timestamp": timestamp,
                "context": {"crossdock": {"account": account, "api": "users"}}}


class EventRequest(_Body):
    """Body of POST /v1/accounts/{account}/events."""

    name: StrictStr = Field(min_length=1, max_length=255, description="the event name")
    message_id: TextId | None = None
    session_id: TextId | None = None
    timestamp: datetime | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    def to_message(self, account: str, timestamp: str) -> dict[str, Any]:
        """The track message this event becomes."""
        message: dict[str, Any] = {
            "type": "track", **self.ids(), "event": self.name, "properties": self.attributes,
            "timestamp": self.timestamp.isoformat() if self.timestamp else timestamp,
            "context": {"crossdock": {"account": account, "api": "events"}},
        }
        if self.message_id:
            message["messageId"] = self.message_id
        if self.session_id:
            message["sessionId"] = self.session_id
        return message


class QueuedBody(BaseModel):
    status: Literal["queued"] = "queued"
    accepted: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = Field(default_factory=list)


class Queued(BaseModel):
    """Success: the messages are durably stored."""

    response: QueuedBody


class ErrorBody(BaseModel):
    status: Literal["error"] = "error"
    message: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Failure, with a 4xx status: `message` names the field and the rule."""

    response: ErrorBody
    code: str = Field(description="the kind of failure (bad_request, unauthorized, "
                                  "too_large, invalid, rate_limited, ...), where SDKs read it")
    message: str = Field(description="the same as response.message, where SDKs read it")
