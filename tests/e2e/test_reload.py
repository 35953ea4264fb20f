"""SIGHUP on a real `crossdock run` process: the config is read again, validated, and applied
without dropping the lease of the batch in flight; a bad config is logged and the running one
kept. (SIGHUP used to end the daemon without a word.)"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e_helpers import (
    Fake,
    one_row,
    outbox_rows,
    start_crossdock,
    track,
    wait_for,
    webhook_destination,
    write_config,
    write_messages,
)

from crossdock.cli import cli
from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.plugins.webhook.fake import make_app as webhook_app
from crossdock.testing.fakeserver import serve

#: what one batch of the first destination takes to answer: long enough for the SIGHUP to
#: land while it is in flight
SLOW = 1.5


def send(config: Path, tmp_path: Path, message_id: str) -> None:
    messages = write_messages(tmp_path / f"{message_id}.jsonl", [track(message_id)])
    result = CliRunner().invoke(cli, ["send", "-c", str(config), "--quiet", str(messages)])
    assert result.exit_code == 0, result.output


def ids(fake: Fake) -> list[str]:
    return [entry["body"]["messageId"] for entry in fake.received()]


def hook(url: str) -> dict[str, object]:
    return webhook_destination(url, delivery={"batch_size": 1, "concurrency": 1,
                                              "ordered": False})


@pytest.fixture
def second_fake() -> object:
    state = WebhookFake()
    with serve(webhook_app(state)) as server:
        yield Fake(state, server)


def test_sighup_reloads_without_dropping_the_lease_in_flight(
    tmp_path: Path, webhook_fake: Fake, second_fake: Fake,
) -> None:
    old, new = webhook_fake, second_fake
    old.script(latency=SLOW)
    config = write_config(tmp_path, {"hook": hook(f"{old.url}/in")})
    log = tmp_path / "daemon.log"
    daemon = start_crossdock("run", "-c", str(config), log=log)
    db = tmp_path / "outbox.db"
    try:
        wait_for(lambda: "crossdock running" in log.read_text(), "the daemon to start", 60,
                 log.read_text)
        send(config, tmp_path, "m-1")
        wait_for(lambda: any(r.state == "leased" for r in outbox_rows(db)),
                 "m-1 leased (in flight to the slow destination)", 30, log.read_text)

        write_config(tmp_path, {"hook": hook(f"{new.url}/in")})
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in log.read_text(), "the reload", 30, log.read_text)
        assert daemon.poll() is None, log.read_text()
        text = log.read_text()
        assert "destinations added: none; changed: hook; removed: none; unchanged: 0" in text
        # The batch in flight was finished and settled by the old worker: not released, not
        # sent again to the new address.
        assert one_row(db, "hook", "m-1").state == "delivered"
        assert one_row(db, "hook", "m-1").attempts == 1
        assert ids(old) == ["m-1"]

        send(config, tmp_path, "m-2")
        wait_for(lambda: one_row(db, "hook", "m-2").state == "delivered", "m-2 delivered",
                 30, log.read_text)
        assert ids(new) == ["m-2"] and ids(old) == ["m-1"]

        # A bad config: logged with its problem, the running one kept.
        config.write_text(config.read_text().replace("plugin: webhook", "plugin: webhok"))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "is invalid; the running config is kept" in log.read_text(),
                 "the bad reload to be logged", 30, log.read_text)
        assert "destinations.hook.plugin: unknown plugin 'webhok'" in log.read_text()
        assert daemon.poll() is None, log.read_text()
        write_config(tmp_path, {"hook": hook(f"{new.url}/in")})  # `send` reads it too
        send(config, tmp_path, "m-3")
        wait_for(lambda: one_row(db, "hook", "m-3").state == "delivered", "m-3 delivered",
                 30, log.read_text)
        assert ids(new) == ["m-2", "m-3"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
    assert code == 0, log.read_text()
