"""Settings of the Slack incoming-webhook destination (`settings:` in crossdock.yaml)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from crossdock.plugins.slack.const import SLACK_HOST, WEBHOOK_PATH_PREFIX


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

    @field_validator("webhook_url")
    @classmethod
    def _slack_webhook(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # Errors never repeat the URL: it is the secret.
        parts = urlsplit(value.get_secret_value().strip())
        if info.data.get("allow_any_host"):
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s) URL")
            return value
        if parts.scheme != "https" or parts.hostname != SLACK_HOST:
            raise ValueError(
                f"must be an https://{SLACK_HOST}{WEBHOOK_PATH_PREFIX}... URL "
                "(set allow_any_host: true for a fake or a proxy)"
            )
        if not parts.path.startswith(WEBHOOK_PATH_PREFIX) or \
                len(parts.path.removeprefix(WEBHOOK_PATH_PREFIX).strip("/").split("/")) < 3:
            raise ValueError(f"must have the path {WEBHOOK_PATH_PREFIX}<team>/<bot>/<token>")
        return value
