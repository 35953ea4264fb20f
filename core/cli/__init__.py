"""The `crossdock` command-line tool: one module per command group, `common` for what they
share (consoles, opening the config and its outbox), `root` for the group that holds them.

What a command shows of the outbox comes from library functions (crossdock.views,
crossdock.replay, crossdock.outbox.copy, ...) that the web console calls too; the modules here
only parse options and render.
"""

from crossdock.cli.root import cli, main

__all__ = ["cli", "main"]
