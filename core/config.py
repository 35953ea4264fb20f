"""crossdock.yaml's models: pure pydantic, every section and setting with its type, default
and own rule, and what a loaded config is (`LoadedConfig`, `ConfiguredDestination`).

    outbox:      {url: sqlite:///crossdock.db}
    collector:   {host: 127.0.0.1, port: 8088, write_keys: [...]}
    destinations:
      slack-alerts:
        plugin: slack
        settings: {webhook_url: "${SLACK_WEBHOOK_URL}"}
        filter:   {events: {allow: [Order Completed]}}
        rules:    {only_identified: true, require_consent: [marketing]}
        mapping:  {templates: {text: "..."}}
        delivery: {batch_size: 1, concurrency: 1, rate_limit: 1, max_attempts: 8}

Reading the file, `${ENV}` interpolation and the checks that cross sections or need a
subsystem (plugins' settings, mappings, audiences, exports, functions) are
crossdock.loader's: `load_config` there returns a `LoadedConfig` or raises ConfigError
listing every problem as "path: message". This module imports no subsystem that reads the
config, so each of them can import it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from crossdock.audiences.spec import AudienceConfig
from crossdock.destination import Destination, Script
from crossdock.durations import parse_duration
from crossdock.functions.config import FunctionsConfig, TransformConfig
from crossdock.functions.runtime import LoadedFunction
from crossdock.models import MessageType
from crossdock.origins import ANY, normalize_pattern
from crossdock.outbox.base import LOCK_WAIT
from crossdock.snapshots.spec import SnapshotConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListFilter(_Strict):
    """Names to let through (`allow`, None meaning "the plugin default") and to block."""

    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)


class FilterConfig(_Strict):
    """The data filter: what may reach a destination."""

    message_types: list[MessageType] | None = None
    events: ListFilter = Field(default_factory=ListFilter)
    event_attributes: ListFilter = Field(default_factory=ListFilter)
    user_attributes: ListFilter = Field(default_factory=ListFilter)
    identities: ListFilter = Field(default_factory=ListFilter)


class RulesConfig(_Strict):
    """Forwarding rules; None means "as the plugin's mapping says"."""

    only_identified: bool | None = None
    require_consent: list[str] = Field(default_factory=list)
    require_attributes: list[str] = Field(default_factory=list)


class CircuitConfig(_Strict):
    """A destination's circuit (docs/delivery.md): after `failures` failed requests in a row
    nothing is sent but one probe at growing intervals, from `probe_base` to `probe_max`."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1, description="failed requests in a row to open")
    probe_base: float = Field(default=10.0, gt=0, description="first probe after opening")
    probe_max: float = Field(default=300.0, gt=0, description="longest wait between probes")

    @field_validator("probe_base", "probe_max", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class DeliveryConfig(_Strict):
    """Per-destination delivery tuning; None means "the plugin's default"."""

    batch_size: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1, le=256)
    rate_limit: float | None = Field(default=None, gt=0, description="requests per second")
    max_attempts: int | None = Field(default=None, ge=1,
                                     description="None: no count; max_age is the budget")
    min_attempts: int = Field(default=3, ge=1,
                              description="attempts before max_age may give a row up")
    max_age: float = Field(default=3 * 86400, gt=0, description="seconds before giving up")
    timeout: float = Field(default=10.0, gt=0)
    backoff_base: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=600.0, gt=0)
    retry_after_max: float = Field(default=3600.0, gt=0,
                                   description="the longest Retry-After honoured")
    lease: float = Field(default=60.0, gt=0, description="seconds a worker holds a lease")
    allow_private_network: bool = Field(
        default=False, description="let the engine connect to loopback, private, link-local "
                                   "and other non-public addresses (local receivers, fakes)")
    max_response_bytes: int | None = Field(
        default=None, ge=1024, description="the most of an answer read (None: the plugin's, "
                                           "1 MiB unless it needs more)")
    ordered: bool = Field(default=True, description="one person's messages in order")
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)

    @field_validator("max_age", "timeout", "backoff_base", "backoff_max", "retry_after_max",
                     "lease", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class DestinationConfig(_Strict):
    plugin: str
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    mapping: dict[str, Any] = Field(default_factory=dict)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    #: operator JavaScript each routed message goes through before the plugin (functions.md)
    transform: TransformConfig | None = None


class OutboxConfig(_Strict):
    url: str = "sqlite:///crossdock.db"
    delivered_retention: float = Field(default=7 * 86400, description="seconds")
    #: how long accepted messages are kept for replay and backfill (docs/delivery.md,
    #: "Replay"); 0 keeps none
    keep_messages: float = Field(default=7 * 86400, ge=0, description="seconds")

    @field_validator("delivered_retention", "keep_messages", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return v


class AccountConfig(_Strict):
    """One account of the user API (/v1/accounts/{account}/...): its Bearer keys."""

    keys: list[SecretStr] = Field(default_factory=list)
    rate_limit_per_minute: int | None = Field(default=None, ge=1)


class WriteKeyConfig(_Strict):
    """A write key and the web origins whose pages may send with it (docs/sources.md). A key
    without origins is for servers and apps: a browser's request with it is refused."""

    key: SecretStr
    origins: list[Annotated[str, AfterValidator(normalize_pattern)]] = Field(
        default_factory=list)
    allow_credentials: bool = False

    @model_validator(mode="after")
    def _no_credentials_with_any(self) -> WriteKeyConfig:
        if self.allow_credentials and ANY in self.origins:
            raise ValueError("allow_credentials: never with '*' in origins (a page of any "
                             "site could send with its visitors' cookies); list the origins")
        return self


class CollectorConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    #: each a key alone (`"${KEY}"`) or `{key: "${KEY}", origins: [...]}` for browser pages
    write_keys: list[WriteKeyConfig] = Field(default_factory=list)
    #: the URL browsers reach the collector at, for the settings the browser SDKs load
    #: (behind a proxy that terminates TLS); unset, each request's own URL
    public_url: str | None = None
    max_body_bytes: int = Field(default=512_000, ge=1024)
    rate_limit_per_minute: int = Field(default=5000, ge=1)
    accounts: dict[str, AccountConfig] = Field(default_factory=dict)
    auth_failures_per_minute: int = Field(
        default=30, ge=1,
        description="requests with a wrong or missing key one client address may make a "
                    "minute; then every request from it gets 429 until Retry-After")

    @field_validator("write_keys", mode="before")
    @classmethod
    def _bare_keys(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"key": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError("must be an http:// or https:// URL without query, e.g. "
                             "'https://collect.example.com'")
        return value.rstrip("/")

    def warnings(self) -> list[str]:
        """What `crossdock validate` warns about: write keys any web page may send with."""
        return [f"collector.write_keys.{index}.origins: '*' lets a page on any site send "
                "with this key; in production list your sites' origins"
                for index, write_key in enumerate(self.write_keys) if ANY in write_key.origins]


class AttributeRulesConfig(_Strict):
    """The attribute rules of the profile store (docs/profiles.md)."""

    max_name_length: int = Field(default=49, ge=1, description="names shorter than 50")
    max_string_length: int = Field(default=1000, ge=1, description="longer strings truncated")
    max_custom_per_type: int = Field(default=25, ge=1)
    #: custom attribute names starting with one of these are ignored, counted and reported
    #: (WebEngage reserves `we_` for its own); the rest of the message is kept
    reserved_prefixes: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["we_"])

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> Any:
        if isinstance(value, dict) and "reserved_prefix" in value:
            raise ValueError("reserved_prefix: renamed reserved_prefixes, a list (default "
                             "[we_]); e.g. reserved_prefixes: [we_, internal_]")
        return value


#: WebEngage's rule: email and SMS opt-ins are on until the person turns them off, WhatsApp is
#: off until turned on (docs/profiles.md#consent)
DEFAULT_CONSENT = {"email": True, "sms": True, "whatsapp": False}


def _consent_purposes(value: dict[str, bool]) -> dict[str, bool]:
    for purpose in value:
        if not purpose.strip() or "\x00" in purpose:
            raise ValueError(f"{purpose!r}: a consent purpose is a non-empty name without NUL")
    return value


class DictionaryConfig(_Strict):
    """How much the data dictionary keeps (crossdock.profiles.dictionary, docs/profiles.md)."""

    #: days of per-day counts kept; a name not seen for longer leaves the dictionary
    keep_days: int = Field(default=90, ge=1)
    #: distinct names kept per kind (events, properties, traits); past it new names are
    #: counted under OTHER_NAMES, so a source that puts ids in property keys cannot grow
    #: the dictionary without end
    max_names: int = Field(default=5000, ge=1)


class ProfilesConfig(_Strict):
    session_timeout: float = 45 * 60
    dedup_window: float = 4 * 3600
    attributes: AttributeRulesConfig = Field(default_factory=AttributeRulesConfig)
    dictionary: DictionaryConfig = Field(default_factory=DictionaryConfig)
    #: purpose -> granted, for a person who never said (an opt-in or context.consent); the
    #: one answer the forwarding rules and every destination's routed consent read. Keys
    #: given replace those defaults one by one; a purpose named nowhere is not granted.
    consent_defaults: Annotated[dict[str, bool], AfterValidator(_consent_purposes)] = Field(
        default_factory=lambda: dict(DEFAULT_CONSENT))

    @field_validator("consent_defaults", mode="before")
    @classmethod
    def _merge_consent_defaults(cls, v: Any) -> Any:
        # `{whatsapp: true}` turns WhatsApp on and keeps email and SMS as documented.
        return {**DEFAULT_CONSENT, **v} if isinstance(v, dict) else v

    @field_validator("session_timeout", "dedup_window", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class OpsConfig(_Strict):
    """The ops listener (crossdock.ops, docs/operations.md): /healthz, /readyz and /metrics on
    an address of their own, served whether the collector is on or not. On loopback by
    default: its figures name destinations and queue sizes, which stay inside the host
    unless an operator opens them."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=0, le=65535)


class ConsoleUserConfig(_Strict):
    """One person who may log in to the console: a password (from the environment, like
    every secret) and a role: `admin` may act (replay, pause, send a test message),
    `read-only` may only look."""

    password: SecretStr
    role: Literal["admin", "read-only"] = "read-only"

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 12:
            raise ValueError("must be at least 12 characters (it guards replays and pauses)")
        return value


class ConsoleConfig(_Strict):
    """The operator console (crossdock.console, docs/console.md), served by `crossdock run`
    on the ops listener under /console/ and by `crossdock console`. Off unless a token or a
    user is configured: its pages show what every destination is sent."""

    #: logs in as the admin "token" (a shared operator secret)
    token: SecretStr | None = None
    #: name -> password and role
    users: dict[str, ConsoleUserConfig] = Field(default_factory=dict)
    #: how long a login lasts
    session: float = 12 * 3600.0
    #: a login unused this long ends (an open page's refreshes use it)
    idle: float = 2 * 3600.0
    #: mark the session cookie Secure (the console is reached over https, behind a proxy)
    secure_cookie: bool = False
    #: addresses or networks of reverse proxies whose X-Forwarded-For (and -Proto) the ops
    #: listener and `crossdock console` believe; empty: the header is ignored, the client is
    #: the connecting address (a client could otherwise name any address, and so dodge the
    #: per-address login limit)
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("session", "idle", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (like "
                                 "10.0.0.5 or 10.0.0.0/8)") from None
        return value

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (it logs in as an admin)")
        return value

    @property
    def enabled(self) -> bool:
        return self.token is not None or bool(self.users)

    def proxy_options(self) -> dict[str, Any]:
        """uvicorn's options for a listener serving the console: X-Forwarded-For believed
        only from `trusted_proxies` (uvicorn's default believes it from 127.0.0.1, so a
        client coming through a same-host tunnel could name any address it liked)."""
        if not self.trusted_proxies:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": list(self.trusted_proxies)}


class Config(_Strict):
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)
    ops: OpsConfig = Field(default_factory=OpsConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    profiles: ProfilesConfig = Field(default_factory=ProfilesConfig)
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    audiences: dict[str, AudienceConfig] = Field(default_factory=dict)
    functions: FunctionsConfig = Field(default_factory=FunctionsConfig)
    #: snapshot exports (docs/exports.md): the profile store, or an audience, into files
    exports: dict[str, SnapshotConfig] = Field(default_factory=dict)


#: a live worker renews its leases this many times per lease while a batch is in flight
HEARTBEATS_PER_LEASE = 3


def delivery_warnings(delivery: DeliveryConfig) -> list[str]:
    """Delivery settings that work but invite trouble, as "key: warning" (for validate)."""
    warnings = []
    beat = delivery.lease / HEARTBEATS_PER_LEASE
    if beat + LOCK_WAIT > delivery.lease:
        # A heartbeat is an outbox write; one that waits out the lock timeout must still
        # land before the lease runs out, or another worker sends the batch again.
        warnings.append(
            f"delivery.lease: {delivery.lease:g}s is renewed every {beat:.3g}s while a batch "
            f"is in flight, but an outbox write may wait up to {LOCK_WAIT:g}s for the "
            f"database: below {LOCK_WAIT * HEARTBEATS_PER_LEASE / (HEARTBEATS_PER_LEASE - 1):g}s"
            " a lease can expire under a live worker and its messages be delivered twice")
    circuit = delivery.circuit
    if circuit.enabled and circuit.probe_max < circuit.probe_base:
        warnings.append(f"delivery.circuit.probe_max: {circuit.probe_max:g}s is below "
                        f"probe_base {circuit.probe_base:g}s; probes will come every "
                        f"{circuit.probe_max:g}s")
    return warnings


@dataclass
class ConfiguredDestination:
    """One enabled destination, ready to route to and deliver for."""

    name: str
    config: DestinationConfig
    plugin: Destination
    mapping: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: the compiled `transform:` function, run at delivery (crossdock.delivery.transform)
    transform: LoadedFunction | None = None
    #: the compiled function of the plugin's `script()` (the `function` destination), and
    #: the script it was loaded from
    function: tuple[LoadedFunction, Script] | None = None

    @property
    def function_fingerprint(self) -> str | None:
        """What the destination's transform or destination function runs (its code,
        libraries and limits), so that a reload notices an edited function file the config
        names by the same path."""
        loaded = self.transform or (self.function[0] if self.function is not None else None)
        return None if loaded is None else loaded.fingerprint

    @property
    def batch_size(self) -> int:
        plugin = self.plugin
        return min(self.config.delivery.batch_size or plugin.recommended_batch_size
                   or plugin.max_batch_size, plugin.max_batch_size)

    @property
    def concurrency(self) -> int:
        return self.config.delivery.concurrency or self.plugin.default_concurrency

    @property
    def rate_limit(self) -> float | None:
        return self.config.delivery.rate_limit or self.plugin.default_rate_limit

    @property
    def max_response_bytes(self) -> int:
        return self.config.delivery.max_response_bytes or self.plugin.max_response_bytes


@dataclass
class LoadedConfig:
    config: Config
    destinations: list[ConfiguredDestination]
    base_dir: Path
    warnings: list[str] = field(default_factory=list)
    #: destinations left out of a read-only load (`load_config(read_only=True)`) because
    #: their settings need an environment variable that is not set: name -> why
    withheld: dict[str, str] = field(default_factory=dict)

    @property
    def outbox_url(self) -> str:
        """The outbox URL with a relative SQLite path resolved against the config's folder."""
        url = self.config.outbox.url
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_absolute() and str(path) != ":memory:":
                return f"sqlite:///{self.base_dir / path}"
        return url

    @property
    def routed(self) -> list[ConfiguredDestination]:
        """The destinations messages are routed to: all but those a snapshot export writes
        to, whose files hold that export's profile rows only (docs/exports.md)."""
        targets = {e.destination for e in self.config.exports.values()}
        if not targets:
            return self.destinations
        return [d for d in self.destinations if d.name not in targets]

    def destination(self, name: str) -> ConfiguredDestination:
        for d in self.destinations:
            if d.name == name:
                return d
        raise KeyError(name)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
