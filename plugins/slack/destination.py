"""The Slack incoming-webhook destination: one message per routed item, `{text, blocks}`.

`text` is the rendered `text` template (a summary built from the payload when there is none);
`blocks` is the rendered `blocks` template, Block Kit JSON. `username`, `icon_url` /
`icon_emoji` and `channel` come from the settings, or per message from templates of those
names. Slack allows about one message per second per webhook, so every request's rate key is
its webhook and the defaults send one at a time, once a second.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from crossdock.destination import (
    ALL_MESSAGE_TYPES,
    Destination,
    FieldRefused,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    http_outcome,
    json_request,
    secret_rate_key,
    short_body,
    truncate,
)
from crossdock.plugins.slack.const import MAX_BLOCKS, MAX_SECTION_TEXT, PLUGIN_NAME
from crossdock.plugins.slack.settings import OVERRIDE_PROBLEMS, SlackSettings


def escape(text: str) -> str:
    """Slack mrkdwn control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def default_text(payload: dict[str, Any]) -> str:
    """A one-line summary for a destination whose mapping has no `text` template."""
    who = escape(str(payload.get("userId") or payload.get("anonymousId")
                     or payload.get("profileId") or "someone"))
    kind = payload.get("type")
    if kind == "track":
        return f"*{escape(str(payload.get('event') or 'event'))}* by {who}"
    if kind in ("page", "screen"):
        name = payload.get("name") or payload.get("event") or kind
        return f"{who} viewed *{escape(str(name))}*"
    if kind == "identify":
        return f"{who} updated their profile"
    if kind == "group":
        traits = payload.get("groupTraits")
        group = (traits.get("name") if isinstance(traits, dict) else None) or payload.get(
            "groupId") or "a group"
        return f"{who} joined group *{escape(str(group))}*"
    return f"*{escape(str(kind or 'message'))}* from {who}"


def parse_blocks(raw: Any) -> list[dict[str, Any]] | None:
    """The rendered `blocks` template as a Block Kit list, section texts cut to 3,000."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ItemRejected(
                f"mapping.templates.blocks: rendered text is not JSON ({exc.msg} at line "
                f"{exc.lineno} column {exc.colno})"
            ) from exc
    # Block Kit Builder exports {"blocks": [...]}; accept it as written there.
    if isinstance(raw, dict) and "blocks" in raw:
        raw = raw["blocks"]
    if not isinstance(raw, list):
        raise ItemRejected(
            f"mapping.templates.blocks: must render a JSON list of blocks, got "
            f"{type(raw).__name__}"
        )
    if len(raw) > MAX_BLOCKS:
        raise ItemRejected(
            f"blocks: Slack takes at most {MAX_BLOCKS} blocks per message, got {len(raw)}"
        )
    blocks: list[dict[str, Any]] = []
    for i, block in enumerate(raw):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ItemRejected(f"blocks[{i}]: must be an object with a \"type\"")
        text = block.get("text")
        if block["type"] == "section" and isinstance(text, dict) \
                and isinstance(text.get("text"), str):
            block = {**block, "text": {**text, "text": truncate(text["text"], MAX_SECTION_TEXT)}}
        blocks.append(block)
    return blocks or None


def message_body(payload: dict[str, Any], defaults: dict[str, str] | None = None
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON Slack receives for one routed payload, and the overrides left out (name ->
    why). `defaults` are the settings' username / icon / channel; a template of the same name
    rendering a value replaces them (an icon template replaces either icon)."""
    rendered = payload.get("rendered") or {}
    text = rendered["text"] if "text" in rendered else default_text(payload)
    text = "" if text is None else str(text).strip()
    blocks = parse_blocks(rendered.get("blocks"))
    if not text and not blocks:
        raise ItemRejected("mapping.templates.text: rendered empty and there are no blocks")
    body: dict[str, Any] = {"text": text}
    if blocks:
        body["blocks"] = blocks
    chosen = dict(defaults or {})
    refused: dict[str, str] = {}
    for name, problem in OVERRIDE_PROBLEMS.items():
        value = rendered.get(name)
        if value is None or not str(value).strip():
            continue  # the template left it to the settings
        value = str(value).strip()
        if (why := problem(value)) is None:
            if name.startswith("icon_"):
                chosen.pop("icon_url", None)
                chosen.pop("icon_emoji", None)
            chosen[name] = value
        elif name == "channel":
            # Posting to the webhook's own channel instead could show the message to
            # people it was not meant for.
            raise ItemRejected(f"mapping.templates.channel: {why}")
        else:
            refused[name] = f"mapping.templates.{name}: {why}"
    body.update(chosen)
    return body, refused


class SlackDestination(Destination[SlackSettings]):
    manifest = Manifest(
        name=PLUGIN_NAME, description="Post a message to a Slack channel (incoming webhook)",
        docs_url="docs/destinations/slack.md",
        # every type, group calls included ("user-1 joined group *ACME*")
        message_types=ALL_MESSAGE_TYPES, rate_limit=1.0, concurrency=1, auth="secret_url")

    def defaults(self) -> dict[str, str]:
        """The settings' username, icon and channel that every message carries."""
        settings = self.settings
        return {name: value for name, value in (
            ("username", settings.username), ("icon_url", settings.icon_url),
            ("icon_emoji", settings.icon_emoji), ("channel", settings.channel))
            if value is not None}

    def build_item(self, item: OutboxItem) -> list[Planned]:
        url = self.settings.webhook_url.get_secret_value().strip()
        body, refused = message_body(item.payload, self.defaults())
        # One rate limit per webhook, keyed by a hash: the URL is the secret.
        request = PlannedRequest(json_request("POST", url, body), [item],
                                 rate_key=secret_rate_key("slack", url))
        return [*(FieldRefused(item, name, why) for name, why in refused.items()), request]

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        """Slack answers in plain text: `ok`, or an error code such as `channel_not_found`."""
        if 200 <= response.status_code < 300:
            return http_outcome(response)
        code = short_body(response, limit=100) or "no body"
        return http_outcome(response, f"slack {code} (HTTP {response.status_code})")
