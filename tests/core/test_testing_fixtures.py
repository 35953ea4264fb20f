"""The pytest plugin `pip install 'crossdock[testing]'` brings (crossdock.testing.pytest_plugin,
loaded through its pytest11 entry point): its fixtures, used as a plugin's tests use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crossdock.plugins.webhook.fake import WebhookFake, make_app

TRACK = {"type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "m-1"}


def test_fake_server_and_pipeline_deliver_to_a_fake(fake_server: Any, pipeline: Any) -> None:
    fake = WebhookFake()
    server = fake_server(make_app(fake))
    run = pipeline({"outbox": {"url": "sqlite:///outbox.db"}, "collector": {"enabled": False},
                    "destinations": {"hook": {
                        "plugin": "webhook", "settings": {"url": f"{server.url}/in"},
                        "delivery": {"allow_private_network": True}}}}, [TRACK])
    assert run.report.delivered == 1
    assert [r["state"] for r in run.rows] == ["delivered"]
    assert [entry["body"]["event"] for entry in fake.received] == ["Order Completed"]


def test_cassettes_are_the_folder_beside_the_test(cassettes: Any) -> None:
    assert cassettes.cassette_library_dir == str(Path(__file__).parent / "cassettes")
    assert cassettes.record_mode in ("none", "all")


def test_the_plugin_is_loaded_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("crossdock")
