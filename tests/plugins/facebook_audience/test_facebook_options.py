"""An operator's `mapping.options` reach the facebook_audience plugin: crossdock.yaml ->
accept -> profile -> route -> outbox -> deliver -> the contract fake, and `crossdock validate`
names a bad option by its path."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from facebook_helpers import SECRET

from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.plugins.facebook_audience.fake import (
    DEFAULT_AUDIENCE,
    DEFAULT_TOKEN,
    FacebookAudienceFake,
)
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pipeline import run_pipeline

MESSAGES = [
    {"type": "identify", "userId": "u1", "messageId": "m-1",
     "traits": {"email": "ann@home.example", "work_email": "Ann@Work.example",
                "firstName": "Ann", "nickname": "Annie"}},
    {"type": "track", "userId": "u1", "messageId": "m-2", "event": "audience_entered",
     "properties": {"audience": "high_value"}},
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config(tmp_path: Path, url: str, mapping: dict[str, Any] | None = None) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "plugin": "facebook_audience",
        "settings": {"audience_id": DEFAULT_AUDIENCE, "access_token": DEFAULT_TOKEN,
                     "graph_url": url, "app_secret": SECRET, "schema": ["EMAIL", "FN"]},
        "delivery": {"allow_private_network": True},  # the fake is on 127.0.0.1
    }
    if mapping is not None:
        destination["mapping"] = mapping
    return {"outbox": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
            "collector": {"enabled": False}, "destinations": {"ads": destination}}


async def members(tmp_path: Path, server: RunningServer, fake: FacebookAudienceFake,
                  mapping: dict[str, Any] | None = None) -> list[dict[str, str]]:
    run = await run_pipeline(config(tmp_path, server.url, mapping), MESSAGES,
                             base_dir=tmp_path)
    assert run.report.delivered == 1, run.rows
    return fake.members()


async def test_the_shipped_fields_send_the_email_trait(
        tmp_path: Path, server: RunningServer, fake: FacebookAudienceFake) -> None:
    assert await members(tmp_path, server, fake) == [
        {"EMAIL": sha("ann@home.example"), "FN": sha("ann")}]


async def test_an_operators_fields_change_what_is_sent(
        tmp_path: Path, server: RunningServer, fake: FacebookAudienceFake) -> None:
    # EMAIL replaced (a list replaces); FN given a new source; the other fields keep theirs.
    mapping = {"options": {"fields": {"EMAIL": ["work_email"], "FN": ["nickname"]}}}
    assert await members(tmp_path, server, fake, mapping) == [
        {"EMAIL": sha("ann@work.example"), "FN": sha("annie")}]


@pytest.mark.parametrize(("options", "problem"), [
    ({"field": {"EMAIL": ["work_email"]}},
     "destinations.ads.mapping.options.field: unknown option (did you mean 'fields'?)"),
    ({"fields": {"EMIAL": ["work_email"]}},
     "destinations.ads.mapping.options.fields: unknown schema field(s) EMIAL; known: "),
    ({"fields": {"EMAIL": "work_email"}},
     "destinations.ads.mapping.options.fields.EMAIL: Input should be a valid list"),
])
def test_a_bad_option_is_named_by_its_path(tmp_path: Path, options: dict[str, Any],
                                           problem: str) -> None:
    raw = config(tmp_path, "https://graph.facebook.com", {"options": options})
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, env={})
    (found,) = caught.value.problems
    assert found.startswith(problem)
