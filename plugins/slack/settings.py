"""Settings of the Slack incoming-webhook destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crossdock.plugins.slack.const import SLACK_HOST, WEBHOOK_PATH_PREFIX

# Slack: channel names are lower case, without spaces or periods, at most 80 characters;
# "@name" posts to a person (legacy webhooks); C…, G…, D… are channel, group and DM ids.
_CHANNEL = re.compile(r"^(#[^\sA-Z.,#@]{1,80}|@[^\s@#]{1,80}|[CGD][A-Z0-9]{8,})$")
# Emoji names: lower case letters, digits, _ - + '; a skin tone may follow.
_EMOJI = re.compile(r"^:[a-z0-9_+'\-]+:(:skin-tone-[2-6]:)?$")
MAX_USERNAME = 80


def channel_problem(value: str) -> str | None:
    """Why Slack would not take `value` as a channel override, or None."""
    if _CHANNEL.match(value):
        return None
    return ("must be #channel-name (lower case, no spaces or periods, at most 80), @username "
            "or a channel id such as C0123456789")


def icon_emoji_problem(value: str) -> str | None:
    if _EMOJI.match(value):
        return None
    return "must be an emoji name between colons, e.g. :ghost: or :wave::skin-tone-3:"


def icon_url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return None
    return "must be an http(s) URL of an image"


def username_problem(value: str) -> str | None:
    if value.strip() and len(value) <= MAX_USERNAME:
        return None
    return f"must be 1 to {MAX_USERNAME} characters"


#: what each per-message override must look like (the settings and the templates alike)
OVERRIDE_PROBLEMS: dict[str, Callable[[str], str | None]] = {
    "username": username_problem, "icon_url": icon_url_problem,
    "icon_emoji": icon_emoji_problem, "channel": channel_problem,
}


class SlackSettings(BaseModel):
    """One Slack incoming webhook. Its URL is a credential: anyone holding it can post."""

    model_config = ConfigDict(extra="forbid")

    # Declared before webhook_url so its validator can read it.
    allow_any_host: bool = Field(
        default=False, description="accept any http(s) URL (the contract fake, a proxy)"
    )
    webhook_url: SecretStr = Field(
        description="https://hooks.slack.com/services/T…/B…/… (keep it in ${ENV})"
    )
    username: str | None = Field(
        default=None, description="the name the message is posted under (legacy webhooks)")
    icon_url: str | None = Field(
        default=None, description="the image the message is posted with (legacy webhooks)")
    icon_emoji: str | None = Field(
        default=None, description="the emoji the message is posted with, e.g. :ghost: "
                                  "(legacy webhooks)")
    channel: str | None = Field(
        default=None, description="#channel, @user or a channel id to post to instead of the "
                                  "webhook's own (legacy webhooks)")

    @field_validator("webhook_url")
    @classmethod
    def _slack_webhook(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # Errors never repeat the URL: it is the secret.
        parts = urlsplit(value.get_secret_value().strip())
        if info.data.get("allow_any_host"):
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s) URL")
        elif parts.scheme != "https" or parts.hostname != SLACK_HOST:
            raise ValueError(
                f"must be an https://{SLACK_HOST}{WEBHOOK_PATH_PREFIX}... URL "
                "(set allow_any_host: true for a fake or a proxy)"
            )
        elif not parts.path.startswith(WEBHOOK_PATH_PREFIX) or \
                len(parts.path.removeprefix(WEBHOOK_PATH_PREFIX).strip("/").split("/")) < 3:
            raise ValueError(f"must have the path {WEBHOOK_PATH_PREFIX}<team>/<bot>/<token>")
        # A webhook URL has none; one pasted with "?…" or "#…" is a copy-paste accident that
        # Slack would answer with an error for every message.
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment (the part from ? or #)")
        return value

    @field_validator("username", "icon_url", "icon_emoji", "channel")
    @classmethod
    def _override(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip()
        why = OVERRIDE_PROBLEMS[str(info.field_name)](value)
        if why is not None:
            raise ValueError(why)
        return value

    @model_validator(mode="after")
    def _one_icon(self) -> SlackSettings:
        if self.icon_url is not None and self.icon_emoji is not None:
            raise ValueError("icon_url and icon_emoji: set one of them, not both")
        return self
