"""Send a plugin's requests and classify the replies, as one delivery pass does, for tests.

    for ex in exchange(dest, items):       # PlannedRequest sent with httpx, reply classified
        ...
    assert outcomes(dest, items) == [DELIVERED, Retry("HTTP 503: ...", None)]

Real HTTP (to a contract fake started with `crossdock.testing.fakeserver.serve`, or a vcrpy
cassette); no outbox, no retries, no rate limits: those are the engine's. As the engine does,
the items reach the plugin stamped with the attempt's time (`now`, the wall clock unless
given: what a receiver checking the request's time expects).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from crossdock.destination import (
    Destination,
    FieldRefused,
    OutboxItem,
    Outcome,
    PlannedRequest,
    Rejected,
)


@dataclass(frozen=True)
class Exchange:
    """One planned request, the reply it got, and the plugin's reading of that reply."""

    planned: PlannedRequest
    response: httpx.Response
    outcome: Outcome | Sequence[Outcome]


def exchange(dest: Destination, items: Sequence[OutboxItem], now: float | None = None
             ) -> list[Exchange | Rejected | FieldRefused]:
    """`dest.build_requests(items)` in order: each request sent and classified, each item the
    plugin rejected and each value it left out as they are."""
    out: list[Exchange | Rejected | FieldRefused] = []
    at = time.time() if now is None else now
    with httpx.Client() as client:
        for planned in dest.build_requests([item.attempt_at(at) for item in items]):
            if isinstance(planned, Rejected | FieldRefused):
                out.append(planned)
                continue
            response = client.send(planned.request)
            out.append(Exchange(planned, response, dest.classify(planned, response)))
    return out


def outcomes(dest: Destination, items: Sequence[OutboxItem], now: float | None = None
             ) -> list[Outcome | Rejected]:
    """The outcomes of `exchange`, in order: one per request (or each of a per-item list),
    and each Rejected as it is (values left out are not outcomes)."""
    out: list[Outcome | Rejected] = []
    for ex in exchange(dest, items, now):
        if isinstance(ex, FieldRefused):
            continue
        if isinstance(ex, Rejected):
            out.append(ex)
        elif isinstance(ex.outcome, Sequence):
            out.extend(ex.outcome)
        else:
            out.append(ex.outcome)
    return out
