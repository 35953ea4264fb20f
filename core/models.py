"""Messages as they arrive: the Segment tracking spec (track, identify, page, screen, alias,
group).

`parse_message` turns one JSON object into a typed message or raises `MessageError` whose
problems name the field and the rule ("userId: at most 100 characters"); every way a message
arrives goes through it, so the limits of crossdock.json_shape (nesting depth, finite numbers)
hold for all of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from crossdock.errors import MessageError
from crossdock.json_shape import shape_problems

MAX_ID_LENGTH = 100
#: a message type, as config and mappings name one (a filter's `message_types`)
MessageType = Literal["track", "identify", "page", "screen", "alias", "group"]
MESSAGE_TYPES: tuple[str, ...] = get_args(MessageType)


def _id_to_str(value: Any) -> Any:
    # SDKs send numeric user ids; the spec treats ids as strings.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: the rule NoNul checks, as a message names it after the field ("userId: must not ...")
NUL_RULE = "must not contain the NUL character (\\u0000)"


def _no_nul(value: str) -> str:
    # Ids are keys in the profile store and dedup window; PostgreSQL text cannot hold NUL, and
    # an id that differs from another only by an invisible NUL is never what a sender meant.
    if "\x00" in value:
        raise ValueError(NUL_RULE)
    return value


#: a string that may not hold NUL (an identity such as an email, besides the ids)
NoNul = AfterValidator(_no_nul)
#: an id that must arrive as a string (the user API, whose fields are all strict)
TextId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH), NoNul]
#: an id in a Segment message: SDKs send numeric user ids, which become strings
Id = Annotated[TextId, BeforeValidator(_id_to_str)]


def _now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A time without a zone taken as UTC, as Segment does; one with a zone as it is."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_time(moment: datetime | float) -> str:
    """ISO 8601 with UTC written as Z, the way messages carry times; a number is seconds
    since the epoch (the times the outbox and the profile store keep)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.isoformat().replace("+00:00", "Z")


#: a message's time: validated only when present, so the fields' defaults cost nothing
Time = Annotated[datetime, AfterValidator(as_utc)]


def _new_id() -> str:
    return str(uuid.uuid4())


class BaseMessage(BaseModel):
    """Fields every message type shares."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="ignore",
        frozen=False,
    )

    type: str
    message_id: Id = Field(default_factory=_new_id)
    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: Id | None = None
    timestamp: Time = Field(default_factory=_now)
    # Segment's clock fields (docs/collector.md): when the client sent the message, by its
    # clock; when the collector received it, by ours; the client's own timestamp before the
    # collector corrected it for the client's clock skew (crossdock.collector.timestamps).
    sent_at: Time | None = None
    received_at: Time | None = None
    original_timestamp: Time | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)

    @field_validator("user_id", mode="before")
    @classmethod
    def _empty_user_id_is_none(cls, value: Any) -> Any:
        # RudderStack's JavaScript SDK sends "userId": "" for a visitor not yet identified.
        return None if value == "" else value

    @model_validator(mode="after")
    def _someone(self) -> BaseMessage:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("userId or anonymousId: at least one is required")
        return self

    def to_json(self) -> dict[str, Any]:
        """The message as Segment-style JSON (camelCase keys, ISO timestamps)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class TrackMessage(BaseMessage):
    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyMessage(BaseMessage):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


class PageMessage(BaseMessage):
    type: Literal["page"] = "page"
    name: str | None = Field(default=None, max_length=255)
    category: str | None = Field(default=None, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenMessage(BaseMessage):
    type: Literal["screen"] = "screen"
    name: str | None = Field(default=None, max_length=255)
    category: str | None = Field(default=None, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)


class AliasMessage(BaseMessage):
    type: Literal["alias"] = "alias"
    previous_id: Id


class GroupMessage(BaseMessage):
    """The person belongs to a group (a company, an account, an organization). `traits`
    describe the group, not the person: they never become user attributes."""

    type: Literal["group"] = "group"
    group_id: Id
    traits: dict[str, Any] = Field(default_factory=dict)


Message = Annotated[
    TrackMessage | IdentifyMessage | PageMessage | ScreenMessage | AliasMessage | GroupMessage,
    Field(discriminator="type"),
]
_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """Each pydantic error as "path.to.field: rule", the path in the input's own spelling."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        # A discriminated union puts the chosen tag in the path ("track.event"); drop it.
        if loc and loc[0] in MESSAGE_TYPES:
            loc = loc[1:]
        path = ".".join(p for p in [prefix, *loc] if p)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if ": " in msg and not path:
            problems.append(msg)
        elif err["type"] == "missing":
            problems.append(f"{path}: is required")
        else:
            problems.append(f"{path}: {msg}" if path else msg)
    return problems


def parse_message(raw: Any) -> Message:
    """Validate one message (a JSON object); raise MessageError naming each bad field."""
    if not isinstance(raw, dict):
        raise MessageError([f"message: must be a JSON object, got {type(raw).__name__}"])
    if "type" not in raw:
        raise MessageError([f"type: is required (one of {', '.join(MESSAGE_TYPES)})"])
    if raw["type"] not in MESSAGE_TYPES:
        raise MessageError(
            [f"type: must be one of {', '.join(MESSAGE_TYPES)}, got {raw['type']!r}"]
        )
    problems = shape_problems(raw)
    if problems:
        raise MessageError(problems)
    try:
        return _MESSAGE.validate_python(raw)
    except ValidationError as exc:
        raise MessageError(validation_problems(exc)) from exc


@dataclass
class EnrichedMessage:
    """A validated message after the profile step: what the route step sees.

    `message` is the Segment-style JSON of the message. The profile step fills in the person:
    `profile_id` (Crossdock's own id for the person), their current `user_attributes`, their
    `identities` (userId, anonymousId, email, ... by identity type) and the consent purposes
    they granted. Without a profile store these come from the message alone.
    """

    message: dict[str, Any]
    profile_id: str | None = None
    user_attributes: dict[str, Any] = dc_field(default_factory=dict)
    identities: dict[str, str] = dc_field(default_factory=dict)
    consent: set[str] = dc_field(default_factory=set)
    #: system events raised by the profile step (session_start / session_end) are routed too
    system: bool = False
    #: when the message's session started (seconds since the epoch), as the profile store
    #: knows it; None without a sessionId or a profile store
    session_started_at: float | None = None
    #: when set, only these destinations get the message (audience events go to the
    #: destinations their audience lists, crossdock.audiences)
    destinations: frozenset[str] | None = None

    @property
    def identified(self) -> bool:
        return bool(self.identities.get("userId"))

    def to_json(self) -> dict[str, Any]:
        """As JSON, for the outbox's kept messages (replay and backfill re-route it)."""
        return {
            "message": self.message, "profile_id": self.profile_id,
            "user_attributes": self.user_attributes, "identities": self.identities,
            "consent": sorted(self.consent), "system": self.system,
            "session_started_at": self.session_started_at,
            "destinations": None if self.destinations is None else sorted(self.destinations),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnrichedMessage:
        """Back from `to_json`."""
        only = data.get("destinations")
        return cls(
            message=dict(data.get("message") or {}), profile_id=data.get("profile_id"),
            user_attributes=dict(data.get("user_attributes") or {}),
            identities=dict(data.get("identities") or {}),
            consent=set(data.get("consent") or ()), system=bool(data.get("system")),
            session_started_at=data.get("session_started_at"),
            destinations=None if only is None else frozenset(only),
        )


def consent_from_context(context: dict[str, Any]) -> set[str]:
    """Granted consent purposes from `context.consent` (Segment's categoryPreferences, or a
    plain {purpose: bool} mapping, or a list of purposes)."""
    consent = context.get("consent")
    if isinstance(consent, dict):
        prefs = consent.get("categoryPreferences", consent)
        if isinstance(prefs, dict):
            return {str(k) for k, v in prefs.items() if v is True}
    if isinstance(consent, list):
        return {str(p) for p in consent}
    return set()


#: the consent a message grants, from its context and its traits (`enrich_without_profile`)
ConsentOf = Callable[[dict[str, Any], dict[str, Any]], set[str]]


def enrich_without_profile(message: dict[str, Any],
                           consent_of: ConsentOf | None = None) -> EnrichedMessage:
    """Enrichment from the message alone, used when no profile store is attached; its
    consent is `consent_of(context, traits)`, by default `consent_from_context`."""
    identities = {k: str(message[k]) for k in ("userId", "anonymousId") if message.get(k)}
    context = message.get("context") or {}
    traits = dict(context.get("traits") or {})
    if message.get("type") == "identify":
        traits.update(message.get("traits") or {})
    if isinstance(traits.get("email"), str):
        identities.setdefault("email", traits["email"])
    return EnrichedMessage(
        message=message,
        profile_id=identities.get("userId") or identities.get("anonymousId"),
        user_attributes=traits,
        identities=identities,
        consent=(consent_from_context(context) if consent_of is None
                 else consent_of(context, traits)),
    )
