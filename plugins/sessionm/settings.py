"""Settings of the SessionM destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from crossdock.destination import Secret
from crossdock.plugins.sessionm.const import DEFAULT_HOST


class SessionMSettings(BaseModel):
    """Where SessionM lives, the app's credentials, and event-name mappings."""

    model_config = ConfigDict(extra="forbid")

    host: AnyHttpUrl = Field(
        default=AnyHttpUrl(DEFAULT_HOST),
        description="the SessionM API's base URL (e.g. https://api.sessionm.com)",
    )
    api_key: str = Field(
        min_length=1, max_length=200,
        description="the app's API key: part of every path and the Basic auth user name",
    )
    api_secret: Secret = Field(description="the app's API secret: the Basic auth password")
    event_names: dict[str, str] = Field(
        default_factory=dict,
        description="event-name mappings: routed event name -> SessionM event name",
    )

    @field_validator("api_key")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        # The key is a path segment; anything else would change which URL is called.
        if not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("may contain only letters, digits, '-', '_' and '.'")
        return value

    @field_validator("event_names")
    @classmethod
    def _names_not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        empty = sorted(k for k, v in value.items() if not k or not v.strip())
        if empty:
            raise ValueError(f"names must not be empty (check {', '.join(map(repr, empty))})")
        return value

    @property
    def base_url(self) -> str:
        """The host without a trailing slash, ready for API paths."""
        return str(self.host).rstrip("/")
