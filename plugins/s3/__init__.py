"""Files into an S3 bucket (`plugin: s3`): docs/destinations/s3.md."""

from __future__ import annotations

from crossdock.hookspecs import DemoContext, RegisterDemo, RegisterDestination, hookimpl
from crossdock.plugins.s3.destination import S3Destination, S3Settings

__all__ = ["S3Destination", "S3Settings"]


@hookimpl
def register_destinations(register: RegisterDestination) -> None:
    register(S3Destination)


@hookimpl
def register_demo_destinations(register: RegisterDemo, context: DemoContext) -> None:
    from crossdock.plugins.s3.testserver import moto_server_program

    if moto_server_program() is None:
        return  # the demo's S3 server comes with crossdock[test] (moto[server])
    from crossdock.plugins.s3.demo import demo_destination

    register(demo_destination(context))
