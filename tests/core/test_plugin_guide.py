"""docs/plugin-guide.md, followed literally: a plugin package made by `crossdock plugins new`,
installed and passing its own tests as made, then a message delivered through it. Every `sh`
block is run in order in one folder (the
working folder carried from block to block, as in a reader's shell), the `text` block after it
found in what it printed, and every file the guide shows (a fenced block with a `title`) found
line by line in the file the commands made. Two substitutions, both for this test's machine:
`pip install -e './crossdock-acme[test]'` installs the package's wheel into a folder of the
test's own (not into this environment, whose dependencies are there already), and the fake's
port 8090 is a free port. And docs/plugin-reference.md lists every key of the routed payload.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crossdock.testing.fakeserver import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = DOCS / "plugin-guide.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.M | re.S)
PIP_INSTALL = re.compile(r"^pip install -e '\./(?P<package>[\w-]+)\[test\]'$", re.M)


@dataclass
class Block:
    language: str
    title: str
    text: str


@dataclass
class Shell:
    """A reader's shell: its folder, environment and background processes."""

    cwd: Path
    env: dict[str, str]
    port: int
    background: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self, script: str) -> str:
        script = script.replace("8090", str(self.port))
        script = PIP_INSTALL.sub(
            lambda m: (f"{shlex.quote(sys.executable)} -m pip install --quiet --no-deps "
                       f"--no-build-isolation --target {shlex.quote(self.env['PYTHONPATH'])} "
                       f"./{m['package']}"), script)
        lines = []
        for line in script.splitlines():
            if line.endswith(" &"):
                self.start(line.removesuffix(" &"))
            else:
                lines.append(line)
        state = self.cwd / ".guide-cwd"
        done = subprocess.run(["bash", "-e", "-c", "\n".join(lines) + f'\npwd > "{state}"'],
                              cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (script, done.stdout[-3000:], done.stderr[-3000:])
        self.cwd = Path(state.read_text().strip())
        state.unlink()
        return done.stdout + done.stderr

    def start(self, command: str) -> None:
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd,
                                   env=self.env, stdout=subprocess.PIPE, text=True)
        self.background.append(process)
        deadline = time.monotonic() + 30
        while True:  # the fake answers once it listens
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert process.poll() is None, f"{command} ended"
                assert time.monotonic() < deadline, f"{command} did not listen"
                time.sleep(0.05)


def blocks() -> list[Block]:
    return [Block(m[1], (re.search(r'title="([^"]+)"', m[2]) or [None, ""])[1], m[3])
            for m in FENCE.finditer(GUIDE.read_text())]


def shown_in(shown: str, path: Path) -> None:
    """Each line the guide shows ("..." skips) is in the file, in the same order."""
    lines = [line.rstrip() for line in path.read_text().splitlines()]
    at = 0
    for line in shown.splitlines():
        if line.strip() == "...":
            continue
        assert line.rstrip() in lines[at:], f"{path}: {line!r} not found (in order)"
        at = lines.index(line.rstrip(), at) + 1


def normal(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_the_plugin_guide_followed_literally_delivers_a_message(tmp_path: Path) -> None:
    home = tmp_path / "work"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "COLUMNS": "200",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("CROSSDOCK_LOAD_PLUGINS", "CROSSDOCK_RECORD", "CROSSDOCK_CONFIG"):
        env.pop(name, None)
    shell = Shell(home, env, free_port())
    ran = files = 0
    output = ""
    try:
        for block in blocks():
            if block.language == "sh":
                output = shell.run(block.text)
                ran += 1
            elif block.language == "text":
                expected = block.text.replace("8090", str(shell.port))
                for line in expected.splitlines():
                    assert normal(line) in normal(output), (line, output[-3000:])
            elif block.title:
                shown_in(block.text, home / block.title)
                files += 1
        assert (ran, files) == (5, 7)
        # The wheel pip built holds the shipped mapping (package data), which the plugin read.
        assert (tmp_path / "site" / "crossdock_acme" / "mapping.yaml").is_file()
        received = httpx.get(f"http://127.0.0.1:{shell.port}/_fake/received").json()
        assert [(e["event"], e["user_id"]) for e in received["received"]] == [
            ("Order Completed", "u-1")]
    finally:
        for process in shell.background:
            process.terminate()
            process.wait(10)


def test_the_reference_lists_every_key_of_the_routed_payload() -> None:
    from crossdock.testing.payloads import routed_payload

    reference = (DOCS / "plugin-reference.md").read_text()
    table = reference[reference.index("## The routed payload"):]
    documented = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)?(?:, `(\w+)`)?", table, re.M))
    keys = {key for row in documented for key in row if key}
    assert set(routed_payload()) <= keys
    assert {"sentAt", "receivedAt", "originalTimestamp", "previousId", "category", "groupId",
            "groupTraits"} <= keys
