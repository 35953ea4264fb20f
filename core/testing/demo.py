"""What a plugin gives `crossdock demo`: a destination pointing at its contract fake.

    @hookimpl
    def register_demo_destinations(register, context):
        fake = AcmeFake()
        server = context.serve(make_app(fake))
        register(DemoDestination(
            "acme", {"plugin": "acme", "settings": {"base_url": server.url, ...}},
            received=lambda: server.call(lambda: list(fake.received)),
            describe=lambda entry: f"{entry['method']} {entry['path']}"))

The demo writes each destination's `config` into its crossdock.yaml, sends its sample traffic,
and prints what `received()` returns, one line per entry through `describe`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # kept light: the hook specifications import this module
    from aiohttp import web

    from crossdock.testing.fakeserver import RunningServer

T = TypeVar("T")


@dataclass
class DemoDestination:
    """A destination of the demo: its config entry (plugin, settings, filter, delivery), how
    to read what its fake received and describe one entry, whether the demo audience
    (`lifetime_value > 500`) feeds it, and (optionally) what its fake holds at the end, as
    lines."""

    name: str
    config: dict[str, Any]
    received: Callable[[], list[dict[str, Any]]]
    describe: Callable[[dict[str, Any]], str]
    audience: bool = False
    state: Callable[[], list[str]] | None = None


class DemoContext:
    """What the demo lends a plugin: servers and other resources that live as long as the
    demo runs (and are stopped when it ends)."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack

    def serve(self, app: web.Application) -> RunningServer:
        """Run `app` (a contract fake) on 127.0.0.1 on a free port until the demo ends."""
        from crossdock.testing.fakeserver import serve

        return self._stack.enter_context(serve(app))

    def keep(self, resource: AbstractContextManager[T]) -> T:
        """Enter `resource` (a temporary folder, another server) until the demo ends."""
        return self._stack.enter_context(resource)
