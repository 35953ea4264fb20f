"""What a destination plugin is: the contract between an integrator's code and the engine,
and the kit every plugin is written with. A plugin imports only this module (and
`crossdock.hookspecs` for `hookimpl`, `crossdock.dates`, `crossdock.phones`, and
`crossdock.testing` in its fake and tests); tests/core/test_plugin_api.py fails a built-in
that imports anything else of Crossdock.

A destination type is a `Destination[SettingsT, OptionsT]` subclass: a `Manifest`, a settings
model, a mapping file beside it (and a model of its `options:`, read as `self.opts`), and two
pure functions:

- `build_requests(items)`: outbox items (already filtered, normalized and mapped by the route
  step) in; out, what to send, each saying which items it carries: `PlannedRequest`s of
  `httpx.Request`s, or `PlannedSend`s of other sends (a `FilePut` into a file store); plus a
  `Rejected` for an item that can never be sent and a `FieldRefused` for a value left out of
  an item that is still sent. The simple form is `build_item(item)`, called once per item;
  either may raise `ItemRejected` for the item at hand;
- `classify(planned, response)`: one HTTP response in, one outcome per carried item out
  (`classify_receipt` for the receipt of a non-HTTP send), or a `FollowUp`: the next request
  for the same items, when the answer only decides what to send next (a search whose result
  says create or update).

The engine (crossdock.delivery) does all I/O: leasing, batching, rate limits, concurrency,
timeouts, retries with backoff, dead letters. A plugin never sends anything itself.

The error vocabulary, for every plugin alike:

    ItemRejected(reason)        this item can never be sent: dead-lettered with the reason
    ValueRefused(reason)        this value cannot be used: the plugin leaves it out and
                                reports FieldRefused(item, field, reason); the item goes on
    Retry / Failed              what a response means, from classify
"""

from __future__ import annotations

import difflib
import email.utils
import re
import sys
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from typing_extensions import TypeVar as DefaultedTypeVar

from crossdock.kit import (
    Secret,
    basic_auth,
    chunks,
    dotted_paths,
    first_value,
    is_sha256_hex,
    json_content,
    json_number,
    json_request,
    response_json,
    secret_rate_key,
    sha256_hex,
    stringify,
    stringify_values,
    truncate,
)
from crossdock.models import MESSAGE_TYPES
from crossdock.oauth import ClientCredentials, JwtBearer, Password, RefreshToken, TokenGrant
from crossdock.phones import check_phone_region, e164
from crossdock.sends import (
    FilePut,
    FileStore,
    FtpServer,
    LocalFolder,
    Marker,
    Receipt,
    S3Bucket,
    Sendable,
    SftpServer,
    Window,
)

__all__ = [
    "ALL_MESSAGE_TYPES",
    "DEFAULT_MESSAGE_TYPES",
    "DELIVERED",
    "MAX_FOLLOW_UPS",
    "RETRYABLE_STATUS",
    "AuthKind",
    "ClientCredentials",
    "ContactOptions",
    "Delivered",
    "Destination",
    "DestinationContext",
    "Failed",
    "FieldRefused",
    "FilePut",
    "FileStore",
    "FollowUp",
    "FtpServer",
    "ItemRejected",
    "JwtBearer",
    "LocalFolder",
    "Manifest",
    "Marker",
    "OutboxItem",
    "Outcome",
    "Password",
    "Planned",
    "PlannedRequest",
    "PlannedSend",
    "Receipt",
    "RefreshToken",
    "Rejected",
    "Retry",
    "S3Bucket",
    "Script",
    "Secret",
    "Sendable",
    "SftpServer",
    "TokenGrant",
    "ValueRefused",
    "Window",
    "basic_auth",
    "chunks",
    "dotted_paths",
    "first_value",
    "http_outcome",
    "is_sha256_hex",
    "json_content",
    "json_number",
    "json_request",
    "parse_retry_after",
    "per_item",
    "plan_each",
    "response_json",
    "secret_rate_key",
    "sha256_hex",
    "short_body",
    "stringify",
    "stringify_values",
    "truncate",
]

#: what `Destination.max_response_bytes` is unless a plugin says otherwise
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20

ALL_MESSAGE_TYPES = frozenset(MESSAGE_TYPES)
#: what a plugin receives when it names no `message_types`: every type but `group`, which came
#: later, so a plugin written before it never gets a message shape it was not written for. A
#: plugin that handles group calls says so (`message_types = ALL_MESSAGE_TYPES`).
DEFAULT_MESSAGE_TYPES = ALL_MESSAGE_TYPES - {"group"}


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One leased outbox row: a routed message waiting for one destination.

    `attempted_at` is the engine's clock when it handed the row to `build_requests` for this
    attempt (seconds since the epoch): what a plugin signs when a destination wants the time
    of the request, not of the message (Standard Webhooks' webhook-timestamp, Meta's
    appsecret_time), so a retry hours later still carries a fresh time while the plugin stays
    pure. 0.0 only in items built by hand."""

    id: int
    message_id: str
    payload: dict[str, Any]
    attempts: int = 1
    created_at: float = 0.0
    attempted_at: float = 0.0

    def attempt_at(self, now: float) -> OutboxItem:
        """This item as handed to the plugin for an attempt made at `now`."""
        return OutboxItem(self.id, self.message_id, self.payload, self.attempts,
                          self.created_at, now)


@dataclass(slots=True)
class PlannedRequest:
    """An HTTP request a plugin wants sent, and the items whose fate its response decides."""

    request: httpx.Request
    items: list[OutboxItem]
    # Requests with the same rate key share one rate limit (e.g. one Slack webhook URL).
    rate_key: str = ""
    #: which step of a multi-request flow this request is ("search", "create"), for
    #: `classify`; the engine copies a FollowUp's step onto the request it sends
    step: str = ""


@dataclass(slots=True)
class PlannedSend:
    """A non-HTTP send (a `FilePut`, ...) a plugin wants made, and the items whose fate it
    decides; the engine's sender for `send.kind` makes it (crossdock.sends)."""

    send: Sendable
    items: list[OutboxItem]
    rate_key: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item the plugin cannot turn into a request at all: it goes to the dead letters."""

    item: OutboxItem
    reason: str


@dataclass(frozen=True, slots=True)
class FieldRefused:
    """A value the plugin left out of an item's request because the destination cannot use
    it (a phone number without a country, an incomplete address): the item is still sent
    without it. The engine counts these per field and logs each with its reason."""

    item: OutboxItem
    field: str
    reason: str


class ItemRejected(Exception):
    """Raised while building one item that can never be sent (no email for an email-keyed
    API, a template that rendered no JSON): the item is dead-lettered with `reason`, which
    names the field and the rule (never a secret, never a person's value), and the rest of the
    batch goes on. `plan_each` and `per_item` turn it into `Rejected`; raised out of
    `build_requests` for a single item, the engine dead-letters that item itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ValueRefused(Exception):
    """Raised by a plugin's value rules for one value the destination cannot use (a birthday
    that is no date, half an address): the plugin leaves the field out, sends the item without
    it, and returns `FieldRefused(item, field, reason)` beside the request. `reason` names the
    field and the rule, never the value (it is logged, and values are personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: what `build_requests` returns: sends, items it cannot send at all, values it left out
Planned = PlannedRequest | PlannedSend | Rejected | FieldRefused


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination accepted the item."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again later: after `after` seconds if the destination said so, else with backoff."""

    reason: str
    after: float | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The destination refused the item for good: it goes to the dead letters with `reason`."""

    reason: str


Outcome = Delivered | Retry | Failed
DELIVERED = Delivered()

#: the most follow-ups one attempt makes: a plugin answering FollowUp for ever is stopped
MAX_FOLLOW_UPS = 4


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What `classify` answers when a response settles nothing yet but decides the next request
    for the same items: a search whose answer says whether to create or to update, a create
    whose answer holds the id a note is then attached to. The plugin stays pure (a response in,
    a request out); the engine sends `request` at once and hands its answer to `classify` in
    turn, as a `PlannedRequest` carrying the same items.

    The steps are one attempt: a timeout, a connection error or a Retry at any step retries the
    items from their first request, so a flow must be safe to start again (look up, then
    write). An attempt makes at most MAX_FOLLOW_UPS follow-ups; past that its items are
    retried with the plugin named. `step` names what the request is, so `classify` reads
    its answer without guessing from the URL; `rate_key`, when set, is the limit it shares
    (an API that limits each endpoint on its own), else the first request's."""

    request: httpx.Request
    step: str = ""
    rate_key: str | None = None

@dataclass(frozen=True, slots=True)
class Script:
    """Operator JavaScript the engine runs on each leased item before `build_requests`, as it
    fetches OAuth2 tokens for `token_grant()`: a plugin describes the function in its
    settings and does no I/O itself (docs/functions.md, "Destination functions").

    The engine reads `file` (relative to the config's folder) or takes `code`, evaluates the
    `functions.libraries` named in `libraries` before it, and calls `entry(event, settings,
    metadata)` in the function process with `settings` (a `SecretStr` value is passed as its
    text and kept out of every error and log). Each object the function returns reaches
    `build_requests` as one item's payload (the first keeps the row's id and message id, the
    others get `<messageId>:<n>`); null or [] acknowledges the row with nothing sent; a throw,
    a timeout, running out of memory or a value that is no object dead-letters the row.

    `classify`, when the code defines a function of that name, reads each answer instead of
    the plugin's `classify`: `classify(response, settings, metadata)` with the response as
    `{status, headers, body}` returns "delivered", "retry", "dead" or `{outcome, reason,
    retryAfter}`, or null for the plugin's reading."""

    entry: str
    file: str | None = None
    code: str | None = None
    libraries: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    classify: str | None = None


#: how a destination authenticates, as `crossdock plugins` shows it and the docs describe it:
#: none; api_key (a key in a header, the query or the body); basic (user and password); bearer
#: (a long-lived token); oauth2 (tokens the engine fetches and refreshes: `token_grant()`
#: says how); signature (requests
#: signed with a shared secret); secret_url (the URL itself is the credential, as Slack's
#: webhooks); credentials (a file store's password or key)
AuthKind = Literal["none", "api_key", "basic", "bearer", "oauth2", "signature", "secret_url",
                   "credentials"]
_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a destination type is, declared once on its class (`manifest = Manifest(...)`),
    as a Home Assistant integration's manifest: shown by `crossdock plugins`, checked by the
    conformance suite, read by the engine for its defaults.

    `batch_size` is the recommended number of items per request (what a destination gets
    when the operator sets no `delivery.batch_size`); `max_batch_size` the most the API takes
    (default: the recommended size). `rate_limit` is requests per second per rate key when the
    operator sets none (None: unlimited); `concurrency` the concurrent requests per
    destination; `max_response_bytes` the most of an answer the engine reads before
    `classify` (raise it when a complete answer can be larger). `docs_url` is the operator's
    page: an https URL, or a path relative to the root of the plugin's source repository (the
    built-ins: docs/destinations/<name>.md). `auth` is how the destination authenticates by
    default; `other_auth` the other ways its settings may choose (Pipedrive: an API token, or
    `oauth2` with a grant)."""

    name: str
    description: str
    docs_url: str
    message_types: frozenset[str] = DEFAULT_MESSAGE_TYPES
    batch_size: int = 1
    max_batch_size: int | None = None
    rate_limit: float | None = None
    concurrency: int = 4
    auth: AuthKind = "none"
    other_auth: frozenset[AuthKind] = frozenset()
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        problems = []
        if not _PLUGIN_NAME.match(self.name):
            problems.append(f"name {self.name!r}: lower-case letters, digits and _, starting "
                            "with a letter")
        if not self.description.strip():
            problems.append("description: must not be empty")
        unknown = sorted(set(self.message_types) - ALL_MESSAGE_TYPES)
        if unknown or not self.message_types:
            problems.append(f"message_types: known types are {', '.join(MESSAGE_TYPES)}"
                            + (f", not {', '.join(unknown)}" if unknown else ""))
        if self.batch_size < 1 or self.largest_batch < self.batch_size:
            problems.append(f"batch sizes: 1 <= batch_size ({self.batch_size}) <= "
                            f"max_batch_size ({self.largest_batch})")
        if self.rate_limit is not None and self.rate_limit <= 0:
            problems.append("rate_limit: requests per second, more than 0 (None: unlimited)")
        if self.concurrency < 1:
            problems.append("concurrency: at least 1")
        if problems:
            raise ValueError("invalid manifest: " + "; ".join(problems))

    @property
    def largest_batch(self) -> int:
        """The most items one request may carry."""
        return self.batch_size if self.max_batch_size is None else self.max_batch_size


@dataclass(frozen=True)
class DestinationContext:
    """What a plugin may read about one configured destination, beyond its own settings and
    mapping, when `crossdock validate` asks it for warnings (`config_warnings`): so a plugin
    never reaches into the engine's config objects or the profile store."""

    #: the destination's name in crossdock.yaml
    name: str
    #: the merged mapping (the shipped file with the operator's `mapping:` over it)
    mapping: Mapping[str, Any]
    #: the filter's allow lists by category (events, event_attributes, user_attributes,
    #: identities); None where the operator left the plugin's default
    allowed: Mapping[str, list[str] | None]
    #: attribute names the profile store keeps under another name (mParticle's $FirstName is
    #: kept as firstName), which a filter must name as stored
    stored_names: Mapping[str, str] = field(default_factory=dict)

    def stored_name(self, attribute: str) -> str:
        """The name the profile store keeps `attribute` under (itself for most names)."""
        return self.stored_names.get(attribute, attribute)


class ContactOptions(BaseModel):
    """Mapping options every destination that reaches people by email or phone shares: where
    it reads the email and the phone (dotted paths into the routed payload, first found wins)
    and the region national phone numbers are read in (`crossdock.phones`). A plugin's
    options model extends it, and reads the person with `email_of` and `phone_of`."""

    model_config = ConfigDict(extra="forbid")

    email: list[str] = Field(
        default_factory=lambda: ["traits.email", "identities.email"],
        description="where the person's email is read, first found wins")
    phone: list[str] = Field(
        default_factory=lambda: ["traits.phone", "identities.phone"],
        description="where the person's phone number is read, first found wins")
    phone_region: str | None = Field(
        default=None,
        description="the country a national phone number is read in (ISO 3166-1 alpha-2); "
                    "without one only numbers with a + or 00 country prefix are used")

    _paths = field_validator("email", "phone")(dotted_paths)
    _region = field_validator("phone_region")(check_phone_region)

    def email_of(self, payload: Mapping[str, Any]) -> str | None:
        """The person's email address, stripped: the first value found at `email`; None when
        there is none or it is no address (no @)."""
        value = first_value(payload, *self.email)
        if value is None or "@" not in str(value):
            return None
        return str(value).strip()

    def phone_of(self, payload: Mapping[str, Any]) -> str | None:
        """The person's phone number in E.164, from the first value found at `phone`; None
        when there is none. Raises PhoneError for a number that cannot be used (its text
        names the rule, never the number): the plugin leaves it out, reporting
        `FieldRefused(item, field, f"left out: {exc}")`, or rejects the item if it needs it."""
        value = first_value(payload, *self.phone)
        return None if value is None else self.e164(value)

    def e164(self, value: Any) -> str:
        """`value` as an E.164 number, a national one read in `phone_region`; PhoneError when
        it is none (without a region, the error says to set mapping.options.phone_region)."""
        return e164(value, self.phone_region, no_region_hint="set mapping.options.phone_region")


class _FreeOptions(BaseModel):
    """`opts` of a destination that declares no options model: any keys, taken as they are
    (`opts.model_extra`); only "is a mapping" is checked."""

    model_config = ConfigDict(extra="allow")


SettingsT = TypeVar("SettingsT", bound=BaseModel)
# A TypeVar with a default (PEP 696; `typing`'s has one from Python 3.13): a destination
# without mapping options still writes `Destination[Settings]`, and a bare `Destination`
# (the engine's registry) is any destination. Covariant: the engine only reads `opts`.
OptionsT = DefaultedTypeVar("OptionsT", bound=BaseModel, default=BaseModel, covariant=True)


class Destination(Generic[SettingsT, OptionsT]):
    """Base class of every destination type:
    `class AcmeDestination(Destination[AcmeSettings, AcmeOptions])` (or
    `Destination[AcmeSettings]` without mapping options) with a `manifest`, and `build_item`
    or `build_requests` (and `classify` where the API says more than its HTTP status). The
    engine constructs one instance per configured destination; `self.settings` is the
    validated settings model, `self.opts` the mapping's validated options model."""

    #: what the destination type is (name, docs, message types, batch sizes, rate limit, auth)
    manifest: ClassVar[Manifest]
    #: pydantic model of the destination's `settings:` (secrets as SecretStr); taken from the
    #: class's `Destination[Settings]` base when not set
    settings_model: ClassVar[type[BaseModel]]
    #: pydantic model of the mapping's `options:` (None: free-form, only a mapping is checked);
    #: taken from the class's `Destination[Settings, Options]` base when not set. With one,
    #: `crossdock validate` names every bad or unknown option by its path, and `self.opts`
    #: is the validated model with its defaults filled in.
    options_model: ClassVar[type[BaseModel] | None] = None

    # What the engine reads, set from the manifest (a plugin written before manifests sets
    # these itself, and `describe()` makes its manifest from them).
    plugin_name: ClassVar[str]
    description: ClassVar[str] = ""
    message_types: ClassVar[frozenset[str]] = DEFAULT_MESSAGE_TYPES
    recommended_batch_size: ClassVar[int | None] = None
    max_batch_size: ClassVar[int] = 1
    default_rate_limit: ClassVar[float | None] = None
    default_concurrency: ClassVar[int] = 4
    max_response_bytes: ClassVar[int] = DEFAULT_MAX_RESPONSE_BYTES

    settings: SettingsT
    #: the mapping's options, validated once by `options_model` (without one, a model that
    #: takes any key: `opts.model_extra`): what a plugin reads its options from
    opts: OptionsT
    #: the same options as a dict (`opts.model_dump()`), for plugins written before `opts`
    options: dict[str, Any]
    #: the destination's whole merged mapping
    mapping: dict[str, Any]
    #: the name the operator gave this destination in the config (`destinations: NAME:`),
    #: set by the engine (`configured`); "" for an instance built by hand
    destination_name: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        for base in getattr(cls, "__orig_bases__", ()):
            args = typing.get_args(base)
            origin = typing.get_origin(base)
            # Destination[S, O], or a generic subclass of it (ExportDestination[S]): its
            # first argument is the settings model, its second (if any) the options model
            if not (isinstance(origin, type) and issubclass(origin, Destination)):
                continue
            models = [a if isinstance(a, type) and issubclass(a, BaseModel) else None
                      for a in args]
            if "settings_model" not in own and models and models[0] is not None:
                cls.settings_model = models[0]
            if ("options_model" not in own and len(models) > 1 and models[1] is not None
                    and models[1] is not BaseModel):
                cls.options_model = models[1]
        manifest = own.get("manifest")
        if isinstance(manifest, Manifest):
            cls.plugin_name = manifest.name
            cls.description = manifest.description
            cls.message_types = frozenset(manifest.message_types)
            cls.recommended_batch_size = manifest.batch_size
            cls.max_batch_size = manifest.largest_batch
            cls.default_rate_limit = manifest.rate_limit
            cls.default_concurrency = manifest.concurrency
            cls.max_response_bytes = manifest.max_response_bytes

    def __init__(self, settings: SettingsT, mapping: Mapping[str, Any] | None = None) -> None:
        """`mapping` is the destination's merged mapping (the shipped file with the operator's
        `mapping:` deep-merged over it); None means the shipped mapping alone."""
        self.settings = settings
        self.use_mapping(self.default_mapping() if mapping is None else mapping)

    @classmethod
    def describe(cls) -> Manifest:
        """The type's manifest, as the engine reads it: the declared one, or for a plugin
        written before manifests (or a subclass that changed an attribute) one made of its
        class attributes."""
        declared: Manifest | None = getattr(cls, "manifest", None)
        made = Manifest(
            name=cls.plugin_name, description=cls.description or cls.plugin_name,
            docs_url=declared.docs_url if declared else "", message_types=cls.message_types,
            batch_size=min(cls.recommended_batch_size or cls.max_batch_size,
                           cls.max_batch_size),
            max_batch_size=cls.max_batch_size, rate_limit=cls.default_rate_limit,
            concurrency=cls.default_concurrency, auth=declared.auth if declared else "none",
            max_response_bytes=cls.max_response_bytes)
        if declared is not None and _engine_view(declared) == _engine_view(made):
            return declared
        return made

    @classmethod
    def configured(cls, settings: BaseModel, mapping: Mapping[str, Any], name: str = ""
                   ) -> Self:
        """The instance the engine builds for one configured destination (`name`: its name
        in the config), from its settings and merged mapping."""
        plugin = cls(typing.cast(SettingsT, settings), mapping)
        plugin.destination_name = name
        return plugin

    def use_mapping(self, mapping: Mapping[str, Any]) -> None:
        """Set `self.mapping`, `self.opts` (validated by `options_model` when the plugin
        declares one; the config loader has already reported any problem) and
        `self.options`. A plugin that derives values from its options once overrides this,
        calling `super()` first."""
        self.mapping = dict(mapping)
        self.opts = self.parse_options(mapping.get("options"))
        self.options = (dict(self.opts.model_extra or {}) if self.options_model is None
                        else self.opts.model_dump())

    @classmethod
    def parse_options(cls, options: Any) -> OptionsT:
        """The options as the plugin reads them (`self.opts`); raises ValidationError if
        they are invalid."""
        raw = dict(options) if isinstance(options, Mapping) else {}
        return typing.cast(OptionsT, (cls.options_model or _FreeOptions).model_validate(raw))

    @classmethod
    def options_problems(cls, options: Any, path: str) -> list[str]:
        """Every problem in a merged `options:` as "path.key: message" (empty when valid)."""
        if cls.options_model is None or not isinstance(options, Mapping):
            return []  # without a model only "is a mapping" is checked, by MappingSpec
        try:
            cls.options_model.model_validate(dict(options))
        except ValidationError as exc:
            return model_problems(cls.options_model, exc, path, "option")
        return []

    @classmethod
    def parse_settings(cls, raw: Any, path: str = "settings") -> tuple[SettingsT | None,
                                                                       list[str]]:
        """The validated settings, or None and every problem as "path.key: message": an
        unknown key is named with the closest known one (`chanel: unknown setting (did you
        mean 'channel'?)`), and no message repeats a secret's value."""
        try:
            settings = cls.settings_model.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            return None, model_problems(cls.settings_model, exc, path, "setting")
        return typing.cast(SettingsT, settings), []

    @classmethod
    def default_mapping(cls) -> dict[str, Any]:
        """The plugin's shipped mapping: `mapping.yaml` beside the module that defines the
        class (or at `mapping_path()`), or {} if it has none."""
        return dict(_load_mapping(cls.plugin_name, cls.mapping_path()))

    @classmethod
    def mapping_path(cls) -> Path | None:
        """Where the shipped mapping is: `mapping.yaml` in the plugin's package folder."""
        module = sys.modules.get(cls.__module__)
        package = module.__spec__.parent if module is not None and module.__spec__ else ""
        if package:
            resource = resources.files(package).joinpath("mapping.yaml")
            return Path(str(resource)) if resource.is_file() else None
        source = getattr(module, "__file__", None)
        if source is None:
            return None
        path = Path(source).parent / "mapping.yaml"
        return path if path.is_file() else None

    def config_warnings(self, context: DestinationContext) -> list[str]:
        """Warnings for `crossdock validate` about a configured destination (not errors)."""
        return []

    def token_grant(self) -> TokenGrant | None:
        """How the engine gets this destination's OAuth2 access tokens (crossdock.oauth:
        `ClientCredentials`, `RefreshToken`, `Password`, `JwtBearer`), built from
        `self.settings`; None (the default) for a destination that needs none. Pure: the
        engine fetches, caches, shares and refreshes the token and puts it on every request
        (docs/delivery.md)."""
        return None

    def script(self) -> Script | None:
        """The operator's JavaScript the engine runs on each item before `build_requests`,
        described from `self.settings` (`Script`); None (the default) for a destination
        whose items are the routed payloads. With a script, `build_requests` gets what the
        function returned, one value per item (the `function` destination: requests)."""
        return None

    def build_requests(self, items: Sequence[OutboxItem]) -> Sequence[Planned]:
        """Turn routed items into sends. Pure: no I/O, no clock (an attempt's time is
        `item.attempted_at`). The default calls `build_item` for each item."""
        return plan_each(items, self.build_item)

    def build_item(self, item: OutboxItem) -> Planned | Sequence[Planned]:
        """The send(s) of one item, for a destination that sends each item on its own; raise
        ItemRejected for an item that can never be sent."""
        raise NotImplementedError(f"{type(self).__name__} defines neither build_requests "
                                  "nor build_item")

    def classify(
        self, planned: PlannedRequest, response: httpx.Response
    ) -> Outcome | Sequence[Outcome] | FollowUp:
        """Judge a response: one outcome for all carried items, one per item in order, or the
        request to send next for all of them (`FollowUp`)."""
        return http_outcome(response)

    def window(self) -> Window | None:
        """How the engine holds this destination's rows back to put them in files (one file
        per window, or per max_rows / max_bytes waiting), keeping a file's rows together
        for its retries; None (the default): batches as they come, `batch_size` at most."""
        return None

    def classify_receipt(
        self, planned: PlannedSend, receipt: Receipt
    ) -> Outcome | Sequence[Outcome]:
        """Judge what a non-HTTP sender reported for a send that succeeded: delivered unless
        the plugin knows better. (A send that failed never gets here: the engine retries it,
        or dead-letters it when its sender says it can never succeed.)"""
        return DELIVERED


def _engine_view(manifest: Manifest) -> tuple[Any, ...]:
    """What of a manifest the engine reads (the attributes it is mirrored into)."""
    return (manifest.name, manifest.description, frozenset(manifest.message_types),
            manifest.batch_size, manifest.largest_batch, manifest.rate_limit,
            manifest.concurrency, manifest.max_response_bytes)


T = TypeVar("T")


def per_item(items: Sequence[OutboxItem], build: Callable[[OutboxItem], T]
             ) -> tuple[list[tuple[OutboxItem, T]], list[Rejected]]:
    """`build(item)` for each item, in order, for a plugin that puts many items in one
    request: the items built with what `build` returned, and a `Rejected` for each item whose
    build raised ItemRejected."""
    built: list[tuple[OutboxItem, T]] = []
    rejected: list[Rejected] = []
    for item in items:
        try:
            built.append((item, build(item)))
        except ItemRejected as exc:
            rejected.append(Rejected(item, exc.reason))
    return built, rejected


def plan_each(items: Sequence[OutboxItem],
              build: Callable[[OutboxItem], Planned | Sequence[Planned]]) -> list[Planned]:
    """`build(item)` for each item, its sends in order; an item whose build raised
    ItemRejected becomes a `Rejected`, and the other items are planned all the same."""
    out: list[Planned] = []
    built, rejected = per_item(items, build)
    out.extend(rejected)
    for _, planned in built:
        if isinstance(planned, PlannedRequest | PlannedSend | Rejected | FieldRefused):
            out.append(planned)
        else:
            out.extend(planned)
    return out


def model_problems(model: type[BaseModel], exc: ValidationError, path: str, what: str
                   ) -> list[str]:
    """Each error of validating `model` as "path.key: message"; an unknown key is named with
    the closest known key of the model it was found in ("unknown setting (did you mean
    'channel'?)"), or the known keys when none is close."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        where = ".".join([path, *loc])
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, loc[:-1])
            close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            problems.append(f"{where}: unknown {what} ({hint})")
        elif err["type"] == "missing":
            problems.append(f"{where}: is required")
        else:
            problems.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return problems


def _known_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The keys of the model found at `loc` inside `model` (nested models only)."""
    current: Any = model
    for part in loc:
        info = current.model_fields.get(part) if isinstance(current, type) and issubclass(
            current, BaseModel) else None
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    names = []
    for name, info in current.model_fields.items():
        names.append(info.alias or name)
    return names


@cache
def _load_mapping(plugin_name: str, path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"mapping file for {plugin_name} must be a YAML mapping")
    return data


RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (digits, a fraction allowed)
    or an HTTP date (one in the past means now). None when the header is absent or is
    neither: a negative number, `inf`, `nan` or junk count as no header, and the engine's
    backoff applies. A very large value is returned as it is; the engine caps what it
    honours (`delivery.retry_after_max`, and the row's `max_age`)."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def short_body(response: httpx.Response, limit: int = 300) -> str:
    """The start of a response body, for error messages and dead-letter reasons."""
    try:
        text = response.text
    except Exception:  # an undecodable body is still worth a reason
        text = repr(response.content[:limit])
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def http_outcome(response: httpx.Response, reason: str | None = None) -> Outcome:
    """The usual reading of an HTTP status: 2xx delivered; 408, 425, 429 and 5xx retried
    (honouring Retry-After); any other status a permanent failure."""
    status = response.status_code
    if 200 <= status < 300:
        return DELIVERED
    why = reason or f"HTTP {status}: {short_body(response)}"
    if status in RETRYABLE_STATUS or status >= 500:
        return Retry(why, parse_retry_after(response.headers.get("retry-after")))
    return Failed(why)
