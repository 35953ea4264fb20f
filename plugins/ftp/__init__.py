"""Files on an FTP server, FTPS where offered (`plugin: ftp`): docs/destinations/ftp.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.ftp.destination import FtpDestination, FtpSettings

__all__ = ["FtpDestination", "FtpSettings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(FtpDestination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    try:
        import pyftpdlib  # noqa: F401
    except ModuleNotFoundError:
        return  # the demo's FTP server is pyftpdlib's, in crossdock[test]
    from crossdock.plugins.ftp.demo import demo_destination

    register(demo_destination(context))
