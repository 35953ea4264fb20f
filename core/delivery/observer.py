"""What the delivery workers tell whoever counts their work (the ops listener's metrics,
crossdock.metrics.DeliveryMetrics). Declared here so the engine never imports its observer."""

from __future__ import annotations

from typing import Literal, Protocol

#: how one try of one message ended: delivered, to be retried, or dead (a dead letter)
Settled = Literal["delivered", "retry", "dead"]


class DeliveryObserver(Protocol):
    def request(self, destination: str, seconds: float) -> None:
        """One request (HTTP, a token request too, or a file put) answered or failed after
        `seconds`."""
        ...

    def settled(self, destination: str, outcome: Settled, attempt: int,
                waited: float | None) -> None:
        """One message's try `attempt` ended in `outcome`; for a delivered one, `waited` is
        the seconds from its acceptance to now (None when its acceptance time is unknown)."""
        ...
