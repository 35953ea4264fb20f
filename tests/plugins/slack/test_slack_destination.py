"""Slack settings, build_requests (pure) and classify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from slack_helpers import REAL_URL, destination, item

from crossdock.destination import (
    DELIVERED,
    Failed,
    FieldRefused,
    Planned,
    PlannedRequest,
    Rejected,
    Retry,
)
from crossdock.loader import parse_config
from crossdock.models import validation_problems
from crossdock.pipeline import build_pipeline
from crossdock.plugin_manager import destination_types
from crossdock.plugins.slack import SlackDestination, SlackSettings


def only_request(out: list[Planned]) -> PlannedRequest:
    (planned,) = out
    assert isinstance(planned, PlannedRequest)
    return planned


def body(planned: PlannedRequest) -> dict[str, object]:
    data = json.loads(planned.request.content)
    assert isinstance(data, dict)
    return data


def test_registered_with_one_message_per_second_per_webhook() -> None:
    cls = destination_types()["slack"]
    assert cls is SlackDestination
    assert (cls.max_batch_size, cls.default_rate_limit, cls.default_concurrency) == (1, 1.0, 1)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({}, "settings.webhook_url: is required"),
        ({"webhook_url": "https://evil.example/services/T/B/x"},
         "settings.webhook_url: must be an https://hooks.slack.com/services/... URL "
         "(set allow_any_host: true for a fake or a proxy)"),
        ({"webhook_url": "http://hooks.slack.com/services/T/B/x"},
         "settings.webhook_url: must be an https://hooks.slack.com/services/... URL "
         "(set allow_any_host: true for a fake or a proxy)"),
        ({"webhook_url": "https://hooks.slack.com/services/T0001"},
         "settings.webhook_url: must have the path /services/<team>/<bot>/<token>"),
        ({"webhook_url": "ftp://127.0.0.1/x", "allow_any_host": True},
         "settings.webhook_url: must be an http(s) URL"),
        ({"webhook_url": "https://hooks.slack.com/services/T0001/B0001/abc?x=1"},
         "settings.webhook_url: must not have a query string or fragment (the part from ? "
         "or #)"),
        ({"webhook_url": "https://hooks.slack.com/services/T0001/B0001/abc#top"},
         "settings.webhook_url: must not have a query string or fragment (the part from ? "
         "or #)"),
        ({"webhook_url": "http://127.0.0.1:9/services/T/B/x?token=1", "allow_any_host": True},
         "settings.webhook_url: must not have a query string or fragment (the part from ? "
         "or #)"),
    ],
)
def test_settings_problems_never_show_the_url(settings: dict[str, object], problem: str
                                              ) -> None:
    with pytest.raises(ValidationError) as info:
        SlackSettings.model_validate(settings)
    assert validation_problems(info.value, "settings") == [problem]


def test_username_icon_and_channel_settings_go_with_every_message() -> None:
    dest = destination(username="Crossdock", icon_emoji=":package:", channel="#sales-alerts")
    planned = only_request(dest.build_requests([item(1)]))
    assert body(planned) == {"text": "Order #1 completed", "username": "Crossdock",
                             "icon_emoji": ":package:", "channel": "#sales-alerts"}
    with_url = destination(icon_url="https://example.com/bot.png")
    assert body(only_request(with_url.build_requests([item(1)])))["icon_url"] == \
        "https://example.com/bot.png"


def test_templates_override_them_per_message() -> None:
    dest = destination(username="Crossdock", icon_emoji=":package:", channel="#sales")
    rendered = {"text": "VIP order", "channel": "#vip-sales", "username": "VIP desk",
                "icon_url": "https://example.com/vip.png"}
    planned = only_request(dest.build_requests([item(1, rendered=rendered)]))
    # An icon template replaces the settings' icon of either kind.
    assert body(planned) == {"text": "VIP order", "username": "VIP desk",
                             "icon_url": "https://example.com/vip.png",
                             "channel": "#vip-sales"}
    # A template rendering empty leaves the settings' value.
    keep = only_request(dest.build_requests([item(2, rendered={"text": "t", "channel": " "})]))
    assert body(keep)["channel"] == "#sales"


def test_a_bad_icon_or_username_is_left_out_and_reported_the_message_sent() -> None:
    one = item(1, rendered={"text": "t", "icon_emoji": "ghost", "username": " "})
    refused, planned = destination().build_requests([one])
    assert refused == FieldRefused(one, "icon_emoji", "mapping.templates.icon_emoji: must be an "
                                   "emoji name between colons, e.g. :ghost: or "
                                   ":wave::skin-tone-3:")
    assert isinstance(planned, PlannedRequest) and body(planned) == {"text": "t"}


def test_a_bad_channel_is_rejected_rather_than_posted_to_the_webhooks_channel() -> None:
    (rejected,) = destination(channel="#general").build_requests(
        [item(1, rendered={"text": "t", "channel": "VIP Sales"})])
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("mapping.templates.channel: must be #channel-name")


@pytest.mark.parametrize(("settings", "problem"), [
    ({"channel": "general"}, "settings.channel: must be #channel-name (lower case, no spaces "
                             "or periods, at most 80), @username or a channel id such as "
                             "C0123456789"),
    ({"channel": "#Sales Team"}, "settings.channel: must be #channel-name (lower case, no "
                                 "spaces or periods, at most 80), @username or a channel id "
                                 "such as C0123456789"),
    ({"icon_emoji": "ghost"}, "settings.icon_emoji: must be an emoji name between colons, "
                              "e.g. :ghost: or :wave::skin-tone-3:"),
    ({"icon_url": "bot.png"}, "settings.icon_url: must be an http(s) URL of an image"),
    ({"username": "x" * 81}, "settings.username: must be 1 to 80 characters"),
    ({"icon_url": "https://example.com/a.png", "icon_emoji": ":ghost:"},
     "settings: icon_url and icon_emoji: set one of them, not both"),
])
def test_override_settings_are_checked(settings: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        SlackSettings.model_validate({"webhook_url": REAL_URL, **settings})
    assert validation_problems(info.value, "settings") == [problem]


@pytest.mark.parametrize("channel", ["#general", "#sales-alerts_2", "@ann", "C0123456789",
                                     "#ventes-équipe"])
def test_channels_slack_takes(channel: str) -> None:
    assert SlackSettings.model_validate({"webhook_url": REAL_URL, "channel": channel}).channel \
        == channel


def test_the_webhook_url_is_a_secret() -> None:
    settings = SlackSettings.model_validate({"webhook_url": REAL_URL})
    assert "abcdefabcdef" not in repr(settings)


def test_text_from_the_rendered_template() -> None:
    planned = only_request(destination().build_requests([item(1)]))
    assert body(planned) == {"text": "Order #1 completed"}
    assert str(planned.request.url) == REAL_URL
    assert planned.request.method == "POST"
    assert planned.request.headers["content-type"] == "application/json"


def test_the_rate_key_is_per_webhook_and_hides_the_url() -> None:
    first = only_request(destination().build_requests([item(1)]))
    same = only_request(destination().build_requests([item(2)]))
    other = only_request(destination(REAL_URL + "x").build_requests([item(1)]))
    assert first.rate_key == same.rate_key != other.rate_key
    assert first.rate_key.startswith("slack:") and "abcdef" not in first.rate_key


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"type": "track", "event": "Signed Up", "userId": "u1"}, "*Signed Up* by u1"),
        ({"type": "page", "name": "Pricing", "userId": None, "anonymousId": "a1"},
         "a1 viewed *Pricing*"),
        ({"type": "identify", "userId": "u<script>"}, "u&lt;script&gt; updated their profile"),
        ({"type": "alias", "userId": "u1"}, "*alias* from u1"),
        ({"type": "group", "userId": "u1", "groupId": "g<1>"}, "u1 joined group *g&lt;1&gt;*"),
        ({"type": "group", "userId": "u1", "groupId": "g1", "groupTraits": {"name": "ACME"}},
         "u1 joined group *ACME*"),
    ],
)
def test_without_a_text_template_a_summary_is_built(payload: dict[str, object], text: str
                                                    ) -> None:
    it = item(1, rendered={})
    it.payload.clear()
    it.payload.update(payload)
    assert body(only_request(destination().build_requests([it]))) == {"text": text}


def test_blocks_template_is_parsed_json() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    rendered = {"text": "hi", "blocks": json.dumps(blocks)}
    assert body(only_request(destination().build_requests([item(1, rendered)]))) == {
        "text": "hi", "blocks": blocks,
    }


def test_block_kit_builder_export_is_accepted() -> None:
    blocks = [{"type": "divider"}]
    rendered = {"text": "hi", "blocks": json.dumps({"blocks": blocks})}
    assert body(only_request(destination().build_requests([item(1, rendered)])))["blocks"] \
        == blocks


def test_long_section_text_is_truncated_with_an_ellipsis() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3500}}]
    sent = body(only_request(destination().build_requests(
        [item(1, {"text": "t", "blocks": blocks})]
    )))
    text = sent["blocks"][0]["text"]["text"]  # type: ignore[index]
    assert len(text) == 3000 and text.endswith("x…")


def test_more_than_50_blocks_is_rejected_with_the_count() -> None:
    blocks = [{"type": "divider"}] * 51
    out = destination().build_requests([item(1, {"text": "t", "blocks": blocks}), item(2)])
    assert out[0] == Rejected(out[0].item,  # type: ignore[union-attr]
                              "blocks: Slack takes at most 50 blocks per message, got 51")
    assert isinstance(out[1], PlannedRequest)


@pytest.mark.parametrize(
    ("rendered", "reason"),
    [
        ({"text": "t", "blocks": "[{"}, "mapping.templates.blocks: rendered text is not JSON"),
        ({"text": "t", "blocks": '{"a": 1}'},
         "mapping.templates.blocks: must render a JSON list of blocks, got dict"),
        ({"text": "t", "blocks": '[{"text": "no type"}]'},
         'blocks[0]: must be an object with a "type"'),
        ({"text": "  "}, "mapping.templates.text: rendered empty and there are no blocks"),
    ],
)
def test_unusable_renderings_are_rejected(rendered: dict[str, object], reason: str) -> None:
    (out,) = destination().build_requests([item(1, rendered)])
    assert isinstance(out, Rejected) and out.reason.startswith(reason)


def test_blocks_without_text_are_sent() -> None:
    rendered = {"text": "", "blocks": [{"type": "divider"}]}
    assert body(only_request(destination().build_requests([item(1, rendered)]))) == {
        "text": "", "blocks": [{"type": "divider"}],
    }


@pytest.mark.parametrize(
    ("status", "text", "headers", "outcome"),
    [
        (200, "ok", None, DELIVERED),
        (400, "invalid_payload", None, Failed("slack invalid_payload (HTTP 400)")),
        (400, "no_text", None, Failed("slack no_text (HTTP 400)")),
        (400, "invalid_blocks", None, Failed("slack invalid_blocks (HTTP 400)")),
        (403, "action_prohibited", None, Failed("slack action_prohibited (HTTP 403)")),
        (403, "invalid_token", None, Failed("slack invalid_token (HTTP 403)")),
        (404, "channel_not_found", None, Failed("slack channel_not_found (HTTP 404)")),
        (404, "no_service", None, Failed("slack no_service (HTTP 404)")),
        (410, "channel_is_archived", None, Failed("slack channel_is_archived (HTTP 410)")),
        (429, "rate_limited", {"Retry-After": "1"}, Retry("slack rate_limited (HTTP 429)", 1.0)),
        (429, "", None, Retry("slack no body (HTTP 429)", None)),
        (500, "rollup_error", None, Retry("slack rollup_error (HTTP 500)", None)),
        (503, "", {"Retry-After": "5"}, Retry("slack no body (HTTP 503)", 5.0)),
    ],
)
def test_classify(status: int, text: str, headers: dict[str, str] | None, outcome: object
                  ) -> None:
    dest = destination()
    planned = only_request(dest.build_requests([item(1)]))
    assert dest.classify(planned, httpx.Response(status, text=text, headers=headers)) == outcome


@pytest.mark.parametrize(("message", "text"), [
    ({"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "ACME Inc"}},
     "u1 joined group *ACME Inc*"),
    ({"type": "group", "userId": "u1", "groupId": "acme"}, "u1 joined group *acme*"),
    ({"type": "track", "userId": "u1", "event": "Signed Up"}, "*Signed Up* by u1"),
])
def test_the_shipped_template_words_each_call(tmp_path: Path, message: dict[str, Any],
                                              text: str) -> None:
    loaded = parse_config({
        "outbox": {"url": f"sqlite:///{tmp_path / 'o.db'}"},
        "collector": {"enabled": False},
        "destinations": {"s": {"plugin": "slack", "settings": {"webhook_url": REAL_URL}}},
    }, base_dir=tmp_path, env={})
    pipeline = build_pipeline(loaded)
    try:
        result = pipeline.accept([{**message, "messageId": "m1"}])
        assert not result.errors, result.errors
        row = pipeline.outbox.row("s", "m1")  # type: ignore[attr-defined]
    finally:
        pipeline.close()
    assert row["payload"]["rendered"]["text"] == text
