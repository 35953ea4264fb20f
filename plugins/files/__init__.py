"""Files in a folder of this machine (`plugin: files`): docs/destinations/files.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.files.destination import FilesDestination, FilesSettings

__all__ = ["FilesDestination", "FilesSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(FilesDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.files.demo import demo_destination

    register(demo_destination(context))
