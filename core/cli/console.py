"""`crossdock console`: the operator console (crossdock.console) served on its own, against
the config's outbox: a SQLite file, or a PostgreSQL outbox a fleet of daemons shares (the
console then shows and acts for the whole fleet). It delivers nothing."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from crossdock.cli import common

if TYPE_CHECKING:
    import uvicorn

#: seconds open live-event streams get to end when the console stops
STOP_GRACE = 3


@click.command("console")
@common.config_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on (loopback: the console shows every message).")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535),
              help="The port (0: a free one, named in the first line).")
def console_command(config_path: str, host: str, port: int) -> None:
    """Serve the operator console (docs/console.md) against the config's outbox."""
    import uvicorn

    from crossdock.console import ConsoleState, make_console_app

    loaded = common.load_or_exit(config_path, read_only=True)
    if not loaded.config.console.enabled:
        raise click.ClickException(
            f"{config_path}: console: no token and no users, so nobody could log in. Add "
            "console.token or console.users (docs/console.md)")
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("crossdock").setLevel(logging.INFO)
    try:
        # Bound here, not by uvicorn: a taken port is an error message, not a traceback.
        listening = socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port} ({exc}); choose "
                                   "another --port") from exc
    with common.outbox_of(loaded) as outbox:
        state = ConsoleState(loaded, outbox)
        bound_host, bound_port = listening.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        common.err_console.print(f"crossdock console: http://{shown}:{bound_port}/console/ "
                                 f"(outbox {outbox.url})", highlight=False, soft_wrap=True)
        server = _server(uvicorn.Config(
            make_console_app(state, standalone=True), log_level="warning", lifespan="off",
            log_config=None, timeout_graceful_shutdown=STOP_GRACE,
            **loaded.config.console.proxy_options()))
        try:
            server.run(sockets=[listening])
        finally:
            state.stop()



def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn, stopped by SIGTERM or SIGINT with exit status 0 (its own handlers raise the
    signal again once it has stopped, which a supervisor reads as a crash)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit)
                        for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)
