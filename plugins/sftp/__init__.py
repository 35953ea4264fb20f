"""Files on an SFTP server (`plugin: sftp`): docs/destinations/sftp.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.sftp.destination import SftpDestination, SftpSettings

__all__ = ["SftpDestination", "SftpSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(SftpDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    try:
        import asyncssh  # noqa: F401
    except ModuleNotFoundError:
        return  # the demo's SFTP server is asyncssh's: crossdock[sftp]
    from crossdock.plugins.sftp.demo import demo_destination

    register(demo_destination(context))
