"""`crossdock demo`, the README's first command, as a user runs it: a real process that starts
the fakes, forwards the sample messages and reports what each destination received."""

from __future__ import annotations

import re
from pathlib import Path

from e2e_helpers import all_plugins_env, crossdock, status_json

_FAKE_LINE = re.compile(r"^\s+fake (\S+)\s+for destination (\S+)$", re.MULTILINE)
_RECEIVED = re.compile(r"^(\S+) \((\S+)\) received (\d+) requests$", re.MULTILINE)


def test_demo_delivers_to_every_destination(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    result = crossdock("demo", "--keep", str(keep), timeout=120, env=all_plugins_env())
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    destinations = {name: plugin for plugin, name in _FAKE_LINE.findall(out)}
    assert {"webhook", "slack"} <= set(destinations.values()), out
    received = {name: (plugin, int(n)) for name, plugin, n in _RECEIVED.findall(out)}
    assert set(received) == set(destinations), out
    for name, (plugin, count) in received.items():
        assert plugin == destinations[name]
        assert count > 0, f"{name} received nothing:\n{out}"
    # The malformed sample is refused by its field, and the rest still goes through.
    assert re.search(r"; 1 refused:\n\s+message \d+: userId: ", out), out

    # What the demo printed is what its outbox says.
    status = status_json(keep / "crossdock.yaml", env=all_plugins_env())
    assert set(status) == set(destinations)
    for name, counts in status.items():
        assert counts["delivered"] > 0, (name, counts)
        assert (counts["queued"], counts["leased"], counts["dead"]) == (0, 0, 0), (name, counts)
    assert f"kept {keep}" in out
