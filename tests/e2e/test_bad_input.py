"""Issue 2 acceptance: a malformed message, a malformed config and a plugin whose settings are
wrong each get a clear error naming the field and the rule, and change nothing else: the good
lines of a file are kept, and a refused config leaves the outbox exactly as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import (
    Fake,
    Row,
    cli_env,
    crossdock,
    crossdock_in_process,
    outbox_rows,
    slack_destination,
    slack_url,
    track,
    webhook_destination,
    write_config,
    write_messages,
)


def good_config(tmp_path: Path, webhook_fake: Fake) -> Path:
    """Two webhook destinations: one takes everything, one only track events."""
    return write_config(tmp_path, {
        "hook-all": webhook_destination(f"{webhook_fake.url}/all"),
        "hook-tracks": webhook_destination(f"{webhook_fake.url}/tracks",
                                           filter={"message_types": ["track"]}),
    })


def send(config: Path, path: Path, *, real: bool = False) -> tuple[int, str, str]:
    """`crossdock send`, in-process unless `real` (one test runs it as a process)."""
    run = crossdock if real else crossdock_in_process
    result = run("send", "-c", str(config), "--quiet", str(path))
    return result.returncode, result.stdout, result.stderr


def baseline(tmp_path: Path, config: Path) -> list[Row]:
    """Two accepted messages (three rows) already waiting in the outbox."""
    messages = [track("ok-1"), {"type": "identify", "messageId": "ok-2", "userId": "u-1",
                                "traits": {"plan": "pro"}}]
    code, out, err = send(config, write_messages(tmp_path / "ok.jsonl", messages))
    assert code == 0, err
    assert "accepted 2 messages (3 outbox rows)" in out
    rows = outbox_rows(tmp_path / "outbox.db")
    assert len(rows) == 3
    return rows


def test_bad_lines_are_reported_by_number_and_the_good_lines_kept(
    tmp_path: Path, webhook_fake: Fake
) -> None:
    config = good_config(tmp_path, webhook_fake)
    before = baseline(tmp_path, config)
    unclosed = '{"type": "track", "messageId": "bad-2", "userId": "u-1", "event": "A"'
    lines = [
        track("new-1"),
        unclosed,
        track("bad-3", userId=None),
        "",
        track("bad-5", userId="x" * 101),
        {"type": "shout", "messageId": "bad-6", "userId": "u-1"},
        {"type": "track", "messageId": "bad-7", "userId": "ghost"},
        "[1, 2]",
        {"type": "page", "messageId": "new-9", "anonymousId": "a-1", "name": "Home"},
        track("ok-1"),  # already accepted: a duplicate, not an error
    ]
    code, out, err = send(config, write_messages(tmp_path / "mixed.jsonl", lines), real=True)

    assert code == 1
    assert err.splitlines() == [
        # the column where the closing brace is missing: just past the line's end
        f"line 2: not valid JSON (Expecting ',' delimiter at column {len(unclosed) + 1})",
        "line 3: userId or anonymousId: at least one is required",
        "line 5: userId: String should have at most 100 characters",
        "line 6: type: must be one of track, identify, page, screen, alias, group, got 'shout'",
        "line 7: event: is required",
        "line 8: message: must be a JSON object, got list",
    ]
    assert "accepted 2 messages (3 outbox rows), 1 duplicates, 6 bad lines" in out
    after = outbox_rows(tmp_path / "outbox.db")
    assert after[:3] == before  # what was there is untouched
    assert {(r.destination, r.message_id) for r in after[3:]} == {
        ("hook-all", "new-1"), ("hook-all", "new-9"), ("hook-tracks", "new-1")}
    assert all(r.state == "queued" and r.attempts == 0 for r in after)
    # A refused message leaves no trace in the profile store either.
    ghost = crossdock("profiles", "show", "-c", str(config), "ghost")
    assert ghost.returncode == 1 and "no profile for 'ghost'" in ghost.stdout + ghost.stderr

    delivered = crossdock("deliver", "--once", "-c", str(config))
    assert delivered.returncode == 0, delivered.stderr
    assert sorted((e["path"], e["body"]["messageId"]) for e in webhook_fake.received()) == [
        ("/all", "new-1"), ("/all", "new-9"), ("/all", "ok-1"), ("/all", "ok-2"),
        ("/tracks", "new-1"), ("/tracks", "ok-1")]


EVERY_COMMAND = ("validate", "send", "deliver", "run", "status", "dead-letters")


def refused_everywhere(config: Path, tmp_path: Path, message: str,
                       commands: tuple[str, ...] = EVERY_COMMAND, *, real: bool = False) -> None:
    """Each command that reads the config exits 1 with `message`, before touching anything.
    In-process unless `real`: the refusal happens before any command-specific work, and one
    test checks it with real processes."""
    run = crossdock if real else crossdock_in_process
    messages = write_messages(tmp_path / "more.jsonl", [track("never-1")])
    every = {"validate": ["validate"], "send": ["send", "--quiet", str(messages)],
             "deliver": ["deliver", "--once"], "run": ["run"], "status": ["status"],
             "dead-letters": ["dead-letters", "replay"]}
    for args in (every[name] for name in commands):
        result = run(*args, "-c", str(config))
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)


def test_malformed_config_lists_every_problem_by_path_and_changes_nothing(
    tmp_path: Path, webhook_fake: Fake
) -> None:
    before = baseline(tmp_path, good_config(tmp_path, webhook_fake))
    bad = write_config(tmp_path, {
        "hook-all": webhook_destination(f"{webhook_fake.url}/all",
                                        delivery={"batch_size": 500, "retries": 3}),
        "crm": {"plugin": "salesforce", "settings": {}},
        "hook-tracks": {**webhook_destination("${HOOK_TRACKS_URL}"), "colour": "blue"},
    }, name="bad.yaml", collector={"enabled": False, "port": 99999})

    # No COLUMNS: a piped CI log still gets one problem per line.
    env = {k: v for k, v in cli_env().items() if k not in ("COLUMNS", "HOOK_TRACKS_URL")}
    result = crossdock("validate", "-c", str(bad), env=env)
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert problems == [
        "  - destinations.hook-tracks.settings.url: environment variable HOOK_TRACKS_URL is "
        "not set",
        "  - collector.port: Input should be less than or equal to 65535",
        "  - destinations.hook-all.delivery.retries: Extra inputs are not permitted",
        "  - destinations.crm.plugin: unknown plugin 'salesforce' (known: slack, webhook)",
        "  - destinations.hook-tracks.colour: Extra inputs are not permitted",
        # not also "settings.url: Input should be a valid URL, input is empty": the unset
        # variable is the problem there
    ], result.stderr
    assert f"{bad}: invalid config" in result.stderr

    refused_everywhere(bad, tmp_path, "invalid config")
    assert outbox_rows(tmp_path / "outbox.db") == before
    assert webhook_fake.received() == []


def test_config_that_is_not_yaml_is_refused(tmp_path: Path, webhook_fake: Fake) -> None:
    before = baseline(tmp_path, good_config(tmp_path, webhook_fake))
    bad = tmp_path / "bad.yaml"
    bad.write_text("outbox: {url: sqlite:///outbox.db\ndestinations: [\n")
    refused_everywhere(bad, tmp_path, "not valid YAML", real=True)
    assert outbox_rows(tmp_path / "outbox.db") == before


@pytest.mark.parametrize(("destination", "problem"), [
    (lambda f: webhook_destination(f"{f.url}/all", settings={"url": None}),
     "destinations.dest.settings.url: URL input should be a string or URL"),
    (lambda f: webhook_destination(f"{f.url}/all", settings={"headers": {"Webhook-Id": "x"}}),
     "destinations.dest.settings.headers: may not set Webhook-Id: Crossdock sets "
     "these headers itself"),
    (lambda f: webhook_destination(f"{f.url}/all", settings={"signature_style": "both"}),
     "destinations.dest.settings.secret: signature_style 'both' needs a secret"),
    (lambda f: {"plugin": "slack", "settings": {"webhook_url": "https://example.com/hook"}},
     "destinations.dest.settings.webhook_url: must be an "
     "https://hooks.slack.com/services/... URL (set allow_any_host: true for a fake or a proxy)"),
    (lambda f: {"plugin": "slack", "settings": {}},
     "destinations.dest.settings.webhook_url: is required"),
    (lambda f: slack_destination("https://hooks.slack.com/services/T/B/C",
                                 settings={"channel": "general"}),
     "destinations.dest.settings.channel: must be #channel-name (lower case, no spaces or "
     "periods, at most 80), @username or a channel id such as C0123456789"),
    (lambda f: slack_destination("https://hooks.slack.com/services/T/B/C",
                                 settings={"chanel": "#general"}),
     "destinations.dest.settings.chanel: unknown setting (did you mean 'channel'?)"),
])
def test_wrong_plugin_settings_are_refused_by_path_and_change_nothing(
    tmp_path: Path, webhook_fake: Fake, slack_fake: Fake, destination: object, problem: str
) -> None:
    good = good_config(tmp_path, webhook_fake)
    before = baseline(tmp_path, good)
    entry = destination(webhook_fake)  # type: ignore[operator]
    bad = write_config(tmp_path, {
        "hook-all": webhook_destination(f"{webhook_fake.url}/all"),
        "alerts": slack_destination(slack_url(slack_fake)),
        "dest": entry,
    }, name="bad.yaml")
    result = crossdock_in_process("validate", "-c", str(bad))
    assert result.returncode == 1
    problems = [line.removeprefix("  - ") for line in result.stderr.splitlines()
                if line.startswith("  - ")]
    assert problems == [problem], result.stderr

    # The commands that would write (validate already checked above).
    refused_everywhere(bad, tmp_path, problem, ("send", "deliver", "run"))
    # The good destinations next to the broken one were not started either.
    assert outbox_rows(tmp_path / "outbox.db") == before
    assert webhook_fake.received() == [] and slack_fake.received() == []
