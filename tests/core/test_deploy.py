"""The files that run Crossdock elsewhere: the Dockerfile, docs/deploy/compose.yaml and the
systemd unit. No image is built here (no container runtime on the test machines); what can be
checked without one is: the image runs the very `crossdock run` the tests start, with the
image's own config and environment, and its HEALTHCHECK command passes against that daemon;
the compose file is well formed and every daemon's config is valid with its environment; the
unit file passes `systemd-analyze verify`."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossdock.loader import parse_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
#: what the end-to-end tests start (tests/e2e/e2e_helpers.py: CROSSDOCK + "run")
TESTS_START = [sys.executable, "-m", "crossdock.cli", "run"]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def instruction(name: str) -> list[str]:
    return [args for op, args in dockerfile() if op == name]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instruction("ENV"):
        for key, value in re.findall(r"(\w+)=(\S+)", args):
            env[key] = value
    return env


def test_the_entrypoint_is_the_crossdock_run_the_tests_start() -> None:
    (entrypoint,) = instruction("ENTRYPOINT")
    assert json.loads(entrypoint) == ["crossdock", "run"]
    # `crossdock` in the image is the console script; the tests run its module: one function.
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts")
                 if e.name == "crossdock"]
    assert script.value == "crossdock.cli:main"
    assert 'if __name__ == "__main__":  # `python -m crossdock.cli`\n    main()' in (
        ROOT / "core" / "cli" / "__main__.py").read_text()
    assert TESTS_START[1:] == ["-m", "crossdock.cli", *json.loads(entrypoint)[1:]]


def test_the_image_runs_as_a_user_with_its_outbox_on_a_volume() -> None:
    ops = [op for op, _ in dockerfile()]
    (user,) = instruction("USER")
    assert user not in ("root", "0")
    # The user is set after the install (pip runs as root) and before the entrypoint.
    assert ops.index("RUN") < ops.index("USER") < ops.index("ENTRYPOINT")
    (volume,) = instruction("VOLUME")
    outbox = image_env()["CROSSDOCK_OUTBOX_URL"]
    assert outbox == f"sqlite:///{volume}/crossdock.db"
    assert any(f"chown {user}:{user} {volume}" in run for run in instruction("RUN"))
    ignored = (ROOT / ".dockerignore").read_text().split()
    for copy in instruction("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source not in ignored and source.split("/")[0] not in ignored


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_image_config_runs_and_passes_its_healthcheck(tmp_path: Path) -> None:
    # The daemon as the image starts it: its ENV, its config (COPY'd from docs/deploy), its
    # ENTRYPOINT with `docker run IMAGE -v` appended; here on a temporary outbox and port.
    (copy,) = [c for c in instruction("COPY") if c.endswith(" /etc/crossdock/crossdock.yaml")]
    port, ops_port = free_port(), free_port()
    env = {**os.environ, **image_env(),
           "CROSSDOCK_CONFIG": str(ROOT / copy.split()[0]),
           "CROSSDOCK_OUTBOX_URL": f"sqlite:///{tmp_path}/crossdock.db",
           "CROSSDOCK_HOST": "127.0.0.1", "CROSSDOCK_PORT": str(port),
           "CROSSDOCK_OPS_PORT": str(ops_port),
           "CROSSDOCK_WRITE_KEY": "wk-deploy-test",
           "WAREHOUSE_URL": "https://ingest.example.com/crossdock",
           "WAREHOUSE_SIGNING_SECRET": "whsec_c2VjcmV0", "CROSSDOCK_LOAD_PLUGINS": "webhook"}
    (healthcheck,) = instruction("HEALTHCHECK")
    check = json.loads(healthcheck.split(" CMD ", 1)[1])
    # the ops listener's /healthz (on whether the collector is or not), on the image's port
    assert check[0] == "python" and "/healthz" in check[-1]
    assert "CROSSDOCK_OPS_PORT" in check[-1] and "CROSSDOCK_PORT'" not in check[-1]
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([*TESTS_START, "-v"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True,
                                  timeout=10)
            if done.returncode == 0:
                break
            assert daemon.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"never healthy: {log.read_text()}"
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    assert code == 0, log.read_text()
    assert f"ops http://127.0.0.1:{ops_port}" in log.read_text()


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def compose_env(values: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose gives it: ${VAR}, ${VAR:?message} from `env`."""
    def one(match: re.Match[str]) -> str:
        name, rule = match.group(1), match.group(2) or ""
        if name not in env:
            assert rule.startswith(":?"), f"${{{name}}} has no default and no :? message"
            raise AssertionError(f"{name} unset: {rule[2:]}")
        return env[name]

    return {key: re.sub(r"\$\{(\w+)(:[?-][^}]*)?\}", one, str(value))
            for key, value in values.items()}


def test_compose_runs_two_daemons_of_the_image_on_one_postgresql() -> None:
    data = compose()
    services = data["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    daemons = {name: s for name, s in services.items() if name != "postgres"}
    assert len(daemons) == 2
    env = {"POSTGRES_PASSWORD": "pw", "CROSSDOCK_WRITE_KEY": "wk",
           "WAREHOUSE_URL": "https://ingest.example.com/crossdock",
           "WAREHOUSE_SIGNING_SECRET": "whsec_c2VjcmV0"}
    pg_env = compose_env(postgres["environment"], env)
    image_config = yaml.safe_load((DEPLOY / "crossdock.yaml").read_text())
    host_ports = []
    for name, service in daemons.items():
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT, name
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
        # The image's entrypoint, not a command of the compose file's own.
        assert "entrypoint" not in service and "command" not in service, name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        host_ports += [p.split(":")[0] for p in service["ports"]]
        daemon_env = compose_env(service["environment"], env)
        url = daemon_env["CROSSDOCK_OUTBOX_URL"]
        assert url == (f"postgresql://{pg_env['POSTGRES_USER']}:{pg_env['POSTGRES_PASSWORD']}"
                       f"@postgres:5432/{pg_env['POSTGRES_DB']}")
        loaded = parse_config(image_config, base_dir=ROOT, env=daemon_env)
        assert loaded.outbox_url == url
        assert [d.name for d in loaded.destinations] == ["warehouse"]
    assert len(set(host_ports)) == len(host_ports)
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD unset: set POSTGRES_PASSWORD"):
        compose_env(daemons["crossdock-1"]["environment"], {})


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_unit_verifies_and_runs_crossdock_run(tmp_path: Path) -> None:
    text = (DEPLOY / "crossdock.service").read_text()
    starts = re.findall(r"^ExecStart=(.*)$", text, re.M)
    assert starts == ["/opt/crossdock/bin/crossdock run"]
    assert re.search(r"^User=crossdock$", text, re.M)
    # `systemctl reload` is the daemon's SIGHUP reload (tests/e2e/test_reload.py).
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", text, re.M)
    # systemd checks the program exists: point it at this environment's `crossdock`.
    installed = shutil.which("crossdock", path=str(Path(sys.executable).parent))
    assert installed is not None
    unit = tmp_path / "crossdock.service"
    unit.write_text(text.replace("/opt/crossdock/bin/crossdock", installed))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, "")
