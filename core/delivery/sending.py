"""What a sender is: the contract of the engine's non-HTTP sends (crossdock.sends), which
every sender implements, the built-ins (crossdock.delivery.senders, s3.py, sftp.py, ftp.py)
and a plugin's (the `register_senders` hook). A module of its own so that the registry in
senders.py can import the built-in senders that import this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from crossdock.sends import Receipt, Sendable


class SendRefused(Exception):
    """Raised by a sender for a send that no retry can make succeed (its name escapes the
    store, the store refuses it for good); the reason is the items' dead-letter reason."""


@dataclass(frozen=True)
class SendOptions:
    """What a sender must honour of the destination it sends for: a sender that connects
    anywhere (S3, SFTP) refuses loopback and private addresses unless the destination opted
    in (`delivery.allow_private_network`, crossdock.egress), as the HTTP transport does."""

    destination: str
    allow_private_network: bool = False


class Sender(Protocol):
    """Does one non-HTTP send. `send` is called concurrently for different sends (up to the
    destination's concurrency), never twice at once for the same items."""

    async def send(self, send: Sendable, options: SendOptions) -> Receipt: ...
