"""`crossdock route`: what a message would become for destinations (the filter's decision,
the routed payload, the planned requests with secrets redacted), without sending or storing
anything; and `preview_route`, the function behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from crossdock.cli import cli
from crossdock.errors import MessageError
from crossdock.loader import load_config
from crossdock.route.preview import preview_route

SLACK_URL = "https://hooks.slack.com/services/T000/B000/S3cr3tT0ken"
SESSIONM_SECRET = "sessionm-api-secret"
WEBHOOK_SECRET = "whsec_ZGVtby1zaWduaW5nLXNlY3JldA=="
ORDER = {"type": "track", "userId": "u-1", "messageId": "m-1", "event": "Order Completed",
         "properties": {"total": 42, "coupon": "X"}, "context": {"traits": {"plan": "pro"}}}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "crossdock.yaml"
    path.write_text(yaml.safe_dump({
        "outbox": {"url": "sqlite:///outbox.db"}, "collector": {"enabled": False},
        "destinations": {
            "hook": {"plugin": "webhook", "settings": {
                "url": "https://receiver.example/in", "secret": WEBHOOK_SECRET}},
            "alerts": {"plugin": "slack", "settings": {"webhook_url": SLACK_URL},
                       "filter": {"events": {"allow": ["Order Completed"]}},
                       "mapping": {"templates": {"icon_emoji": "not an emoji"}}},
            "crm": {"plugin": "sessionm",
                    "settings": {"api_key": "app1", "api_secret": SESSIONM_SECRET},
                    "filter": {"events": {"allow": ["Signed Up"]}}},
            "broken": {"plugin": "webhook",
                       "settings": {"url": "https://receiver.example/b"},
                       "mapping": {"templates": {"body": "{{ event }}"}}},
        },
    }, sort_keys=False))
    return path


def route(config: Path, *args: str, message: Any = ORDER) -> Result:
    return CliRunner().invoke(cli, ["route", "-c", str(config), *args, "-"],
                              input=json.dumps(message), catch_exceptions=False)


def test_route_all_shows_each_decision_payload_and_request_with_secrets_redacted(
        config: Path) -> None:
    result = route(config, "--all", "--json")
    assert result.exit_code == 0, result.output
    for secret in (SLACK_URL, "S3cr3tT0ken", SESSIONM_SECRET, WEBHOOK_SECRET):
        assert secret not in result.stdout
    previews = {p["destination"]: p for p in json.loads(result.stdout)}
    assert [(p["plugin"], p["decision"]) for p in previews.values()] == [
        ("webhook", "routed"), ("slack", "routed"), ("sessionm", "skipped"),
        ("webhook", "routed")]

    hook = previews["hook"]
    assert hook["payload"]["event"] == "Order Completed"
    assert hook["payload"]["traits"] == {"plan": "pro"}
    (request,) = hook["planned"]
    assert (request["kind"], request["method"], request["target"], request["items"]) == (
        "http", "POST", "https://receiver.example/in", ["m-1"])
    assert request["headers"]["webhook-signature"] == "<secret>"
    assert request["body"]["properties"] == {"total": 42, "coupon": "X"}

    alerts = previews["alerts"]
    refused, request = alerts["planned"]
    assert (refused["kind"], refused["field"]) == ("left out", "icon_emoji")
    assert request["target"] == "https://hooks.slack.com/<secret>"
    assert request["body"] == {"text": "*Order Completed* by u-1"}

    assert previews["crm"]["reason"] == "filtered: event 'Order Completed' not allowed"
    assert previews["crm"]["payload"] is None and previews["crm"]["planned"] == []
    (rejected,) = previews["broken"]["planned"]
    assert rejected["kind"] == "rejected"
    assert rejected["reason"].startswith("mapping.templates.body: rendered text is not JSON")


def test_route_prints_for_people(config: Path) -> None:
    result = route(config, "-d", "alerts", "-d", "crm")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "alerts (slack): routed\n  routed payload:\n    {\n" in out
    assert "  planned: 1 send\n" in out
    assert "    left out [m-1] icon_emoji: mapping.templates.icon_emoji: must be an emoji" in out
    assert "    POST https://hooks.slack.com/<secret>  [m-1]  rate key slack:" in out
    assert "crm (sessionm): skipped: filtered: event 'Order Completed' not allowed\n" in out
    assert "S3cr3t" not in out


def test_nothing_is_sent_or_stored(config: Path) -> None:
    assert route(config, "--all").exit_code == 0
    assert sorted(p.name for p in config.parent.iterdir()) == ["crossdock.yaml"]


def test_an_invalid_message_is_named_by_field(config: Path) -> None:
    result = route(config, "--all", message={"type": "track", "userId": "u"})
    assert result.exit_code == 1
    assert "message: event: is required" in result.stderr


@pytest.mark.parametrize(("args", "error"), [
    (("-d", "nope"), "no enabled destination 'nope' (known: hook, alerts, crm, broken)"),
    ((), "name destinations with -d, or give --all"),
    (("--all", "-d", "hook"), "name destinations with -d, or give --all"),
])
def test_which_destinations_must_be_said(config: Path, args: tuple[str, ...],
                                         error: str) -> None:
    result = route(config, *args)
    assert result.exit_code == 2
    assert error in result.stderr


def test_preview_route_is_the_function_behind_it(config: Path) -> None:
    loaded = load_config(config, env={})
    (preview,) = preview_route(loaded, ORDER, ["hook"], now=1_700_000_000.0)
    (request,) = preview.planned
    assert request.headers["webhook-timestamp"] == "1700000000"  # the attempt's time
    with pytest.raises(MessageError):
        preview_route(loaded, {"type": "nope"})
