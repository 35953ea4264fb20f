"""Send a plugin's requests and classify the replies, as one delivery pass does, for tests.

    for ex in exchange(dest, items):       # PlannedRequest sent with httpx, reply classified
        ...                                # (a FollowUp answer: its request is sent next and
                                           # is an Exchange of its own, as the engine does)
    assert outcomes(dest, items) == [DELIVERED, Retry("HTTP 503: ...", None)]

Real HTTP (to a contract fake started with `crossdock.testing.fakeserver.serve`, or a vcrpy
cassette), and the engine's own senders for files; no outbox, no retries, no rate limits:
those are the engine's. As the engine does,
the items reach the plugin stamped with the attempt's time (`now`, the wall clock unless
given: what a receiver checking the request's time expects).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from crossdock.delivery.senders import Senders, SendOptions
from crossdock.destination import (
    MAX_FOLLOW_UPS,
    Destination,
    FieldRefused,
    FollowUp,
    OutboxItem,
    Outcome,
    PlannedRequest,
    PlannedSend,
    Receipt,
    Rejected,
)


@dataclass(frozen=True)
class Exchange:
    """One planned request, the reply it got, and the plugin's reading of that reply."""

    planned: PlannedRequest
    response: httpx.Response
    outcome: Outcome | Sequence[Outcome] | FollowUp


@dataclass(frozen=True)
class SendExchange:
    """One planned non-HTTP send (a file put), what its sender reported, and the plugin's
    reading of that."""

    planned: PlannedSend
    receipt: Receipt
    outcome: Outcome | Sequence[Outcome]


def exchange(dest: Destination, items: Sequence[OutboxItem], now: float | None = None
             ) -> list[Exchange | SendExchange | Rejected | FieldRefused]:
    """`dest.build_requests(items)` in order: each request sent and classified (and each
    follow-up it asks for, up to the engine's MAX_FOLLOW_UPS; each other send made by the
    engine's sender of its kind), each item the plugin rejected and each value it left out as
    they are."""
    out: list[Exchange | SendExchange | Rejected | FieldRefused] = []
    at = time.time() if now is None else now
    senders: Senders | None = None
    with httpx.Client() as client:
        for planned in dest.build_requests([item.attempt_at(at) for item in items]):
            if isinstance(planned, Rejected | FieldRefused):
                out.append(planned)
            elif isinstance(planned, PlannedSend):
                senders = senders or Senders.default()
                sender = senders.for_kind(planned.send.kind)
                if sender is None:
                    raise LookupError(f"no sender for {planned.send.kind} sends")
                # As a destination opted into private networks: tests send to local servers.
                receipt = asyncio.run(sender.send(planned.send, SendOptions("exchange", True)))
                out.append(SendExchange(planned, receipt,
                                        dest.classify_receipt(planned, receipt)))
            else:
                request: PlannedRequest = planned
                for _ in range(MAX_FOLLOW_UPS + 1):
                    response = client.send(request.request)
                    judged = dest.classify(request, response)
                    out.append(Exchange(request, response, judged))
                    if not isinstance(judged, FollowUp):
                        break
                    request = PlannedRequest(judged.request, request.items,
                                             judged.rate_key or request.rate_key, judged.step)
    return out


def outcomes(dest: Destination, items: Sequence[OutboxItem], now: float | None = None
             ) -> list[Outcome | Rejected]:
    """The outcomes of `exchange`, in order: one per send that settled its items (or each of
    a per-item list), and each Rejected as it is (values left out and follow-ups are not
    outcomes)."""
    out: list[Outcome | Rejected] = []
    for ex in exchange(dest, items, now):
        if isinstance(ex, FieldRefused) or (
                isinstance(ex, Exchange) and isinstance(ex.outcome, FollowUp)):
            continue
        if isinstance(ex, Rejected):
            out.append(ex)
        elif isinstance(ex.outcome, Sequence):
            out.extend(ex.outcome)
        else:
            out.append(ex.outcome)
    return out
