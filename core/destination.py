"""What a destination plugin is: the contract between an integrator's code and the engine.

A destination type is a class with a settings model and two pure functions:

- `build_requests(items)`: outbox items (already filtered, normalized and mapped by the route
  step) in, `httpx.Request`s out, each saying which items it carries (and, for a value the
  destination cannot take, a `FieldRefused` naming it while the item is still sent);
- `classify(planned, response)`: one HTTP response in, one outcome per carried item out.

The engine (crossdock.delivery) does all I/O: leasing, batching, rate limits, concurrency,
timeouts, retries with backoff, dead letters. A plugin never sends anything itself.
"""

from __future__ import annotations

import difflib
import email.utils
import hashlib
import inspect
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
import yaml
from pydantic import BaseModel, ValidationError

from crossdock.models import MESSAGE_TYPES

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


#: what `build_requests` returns: requests, items it cannot send at all, values it left out
Planned = PlannedRequest | Rejected | FieldRefused


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


class Destination:
    """Base class of every destination type. Subclasses set the class attributes and the two
    pure functions; the engine constructs one instance per configured destination."""

    #: the `plugin:` name operators write in crossdock.yaml
    plugin_name: ClassVar[str]
    #: pydantic model of the destination's `settings:` (secrets as SecretStr)
    settings_model: ClassVar[type[BaseModel]]
    #: message types this destination can receive; others are never routed to it
    message_types: ClassVar[frozenset[str]] = DEFAULT_MESSAGE_TYPES
    #: the most items one request may carry
    max_batch_size: ClassVar[int] = 1
    #: requests per second per rate key when the operator sets none (None: unlimited)
    default_rate_limit: ClassVar[float | None] = None
    #: concurrent requests per destination when the operator sets none
    default_concurrency: ClassVar[int] = 4
    #: the most of a response the engine reads before `classify` (then it closes the
    #: connection): raise it if a complete answer of this destination can be larger
    max_response_bytes: ClassVar[int] = DEFAULT_MAX_RESPONSE_BYTES
    #: a one-line description for `crossdock plugins`
    description: ClassVar[str] = ""
    #: pydantic model of the mapping's `options:` (None: free-form, only a mapping is checked).
    #: With one, `crossdock validate` names every bad or unknown option by its path, and
    #: `self.options` holds the validated options with the model's defaults filled in.
    options_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, settings: BaseModel, mapping: Mapping[str, Any] | None = None) -> None:
        """`mapping` is the destination's merged mapping (the shipped file with the operator's
        `mapping:` deep-merged over it); None means the shipped mapping alone."""
        self.settings = settings
        self.use_mapping(self.default_mapping() if mapping is None else mapping)

    @classmethod
    def configured(cls, settings: BaseModel, mapping: Mapping[str, Any]) -> Self:
        """The instance the engine builds for one configured destination. A plugin whose
        constructor takes only `settings` (written before mappings reached plugins) still
        gets the merged mapping, set after its constructor ran."""
        try:
            inspect.signature(cls).bind(settings, mapping)
        except TypeError:
            plugin = cls(settings)
            plugin.use_mapping(mapping)
            return plugin
        return cls(settings, mapping)

    def use_mapping(self, mapping: Mapping[str, Any]) -> None:
        """Set `self.mapping` and `self.options` (validated by `options_model` when the
        plugin declares one; the config loader has already reported any problem)."""
        self.mapping: dict[str, Any] = dict(mapping)
        self.options: dict[str, Any] = self.parse_options(mapping.get("options"))

    @classmethod
    def parse_options(cls, options: Any) -> dict[str, Any]:
        """The options as the plugin reads them; raises ValidationError if they are invalid."""
        raw = dict(options) if isinstance(options, Mapping) else {}
        if cls.options_model is None:
            return raw
        return cls.options_model.model_validate(raw).model_dump()

    @classmethod
    def options_problems(cls, options: Any, path: str) -> list[str]:
        """Every problem in a merged `options:` as "path.key: message" (empty when valid)."""
        if cls.options_model is None or not isinstance(options, Mapping):
            return []  # without a model only "is a mapping" is checked, by MappingSpec
        try:
            cls.options_model.model_validate(dict(options))
        except ValidationError as exc:
            return _option_problems(cls.options_model, exc, path)
        return []

    @classmethod
    def default_mapping(cls) -> dict[str, Any]:
        """The plugin's shipped mapping: mappings/<plugin_name>.yaml, or {} if it has none."""
        return dict(_load_mapping(cls.plugin_name, cls.mapping_path()))

    @classmethod
    def mapping_path(cls) -> Path | None:
        """Where a third-party plugin keeps its mapping file; built-ins use crossdock.mappings."""
        return None

    def config_warnings(self, destination: Any) -> list[str]:
        """Warnings for `crossdock validate` about a configured destination (not errors)."""
        return []

    def build_requests(self, items: Sequence[OutboxItem]) -> Sequence[Planned]:
        """Turn routed items into HTTP requests. Pure: no I/O, no clock (an attempt's time
        is `item.attempted_at`)."""
        raise NotImplementedError

    def classify(
        self, planned: PlannedRequest, response: httpx.Response
    ) -> Outcome | Sequence[Outcome]:
        """Judge a response: one outcome for all carried items, or one per item in order."""
        return http_outcome(response)


def _option_problems(model: type[BaseModel], exc: ValidationError, path: str) -> list[str]:
    known = list(model.model_fields)
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join([path, *(str(part) for part in err["loc"])])
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            close = difflib.get_close_matches(str(err["loc"][0]), known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            problems.append(f"{where}: unknown option ({hint})")
        else:
            problems.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return problems


def json_content(body: Any) -> bytes:
    """A JSON request body as compact UTF-8 bytes, for `httpx.Request(content=...)`: the same
    body always gives the same bytes, so a retry is the request sent before."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def secret_rate_key(prefix: str, secret: str) -> str:
    """A `PlannedRequest.rate_key` for requests that share a limit per secret (an API key, a
    webhook URL): "prefix:" and a short hash, so the secret never shows in logs or status."""
    return f"{prefix}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


@cache
def _load_mapping(plugin_name: str, path: Path | None) -> dict[str, Any]:
    if path is not None:
        text = path.read_text()
    else:
        resource = resources.files("crossdock.mappings").joinpath(f"{plugin_name}.yaml")
        if not resource.is_file():
            return {}
        text = resource.read_text()
    data = yaml.safe_load(text) or {}
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


@dataclass
class DestinationInfo:
    """What `crossdock plugins` shows of a destination type."""

    plugin_name: str
    description: str
    module: str
    settings: dict[str, Any] = field(default_factory=dict)
