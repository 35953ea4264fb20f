"""Send a plugin's requests and classify the replies, as one delivery pass does, for tests.

    for ex in exchange(dest, items):       # PlannedRequest sent with httpx, reply classified
        ...                                # (a FollowUp answer: its request is sent next and
                                           # is an Exchange of its own, as the engine does)
    assert outcomes(dest, items) == [DELIVERED, Retry("HTTP 503: ...", None)]

Real HTTP (to a contract fake started with `crossdock.testing.fakeserver.serve`, or a vcrpy
cassette), and the engine's own senders for files; no outbox, no retries, no rate limits:
those are the engine's. As the engine does,
the items reach the plugin stamped with the attempt's time (`now`, the wall clock unless
given: what a receiver checking the request's time expects), and a destination that declares
an OAuth2 grant (`token_grant()`) gets its token from the token endpoint first, put on each
request, and a new one once after a 401 (crossdock.delivery.tokens); the token requests are
not Exchanges of their own. A destination with a function (`script()`: the function
destination) has its items through the function first, as the engine runs it
(`build_planned`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from crossdock.delivery.senders import Senders
from crossdock.delivery.sending import SendOptions
from crossdock.delivery.tokens import Token, authorize, read_token
from crossdock.delivery.transform import FunctionStep
from crossdock.destination import (
    MAX_FOLLOW_UPS,
    Destination,
    FieldRefused,
    FollowUp,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    PlannedSend,
    Receipt,
    Rejected,
)
from crossdock.errors import ConfigError
from crossdock.functions.config import FunctionsConfig, Source, load_function


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
        tokens = _Authorizing(dest, client)
        for planned in build_planned(dest, [item.attempt_at(at) for item in items]):
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
                    response = tokens.send(request.request)
                    judged = dest.classify(request, response)
                    out.append(Exchange(request, response, judged))
                    if not isinstance(judged, FollowUp):
                        break
                    request = PlannedRequest(judged.request, request.items,
                                             judged.rate_key or request.rate_key, judged.step)
    return out


def build_planned(dest: Destination, items: Sequence[OutboxItem],
                  base_dir: Path | None = None) -> list[Planned]:
    """What the engine plans for `items`: `dest.build_requests` of them, or, for a destination
    with a function (`script()`), of what the function returned for them, run as the engine
    runs it (the function process, `functions:` defaults; files relative to `base_dir`, the
    working folder unless given). A function that fails for an item raises AssertionError
    with the dead letter the engine would write."""
    script = dest.script()
    if script is None:
        return list(dest.build_requests(items))
    loaded, problems = load_function(
        Source(file=script.file, code=script.code), list(script.libraries), FunctionsConfig(),
        base_dir or Path.cwd(), "settings", (script.entry,))
    if loaded is None:
        raise ConfigError(problems)
    batch = FunctionStep(dest.destination_name, loaded, script).apply(items)
    assert not batch.failed, batch.failed
    return list(dest.build_requests(batch.items))


def outcomes(dest: Destination, items: Sequence[OutboxItem], now: float | None = None
             ) -> list[Outcome | Rejected]:
    """The outcomes of `exchange`, in order: one per send that settled its items (or each of
    a per-item list), and each Rejected as it is (values left out and follow-ups are not
    outcomes)."""
    out: list[Outcome | Rejected] = []
    for ex in exchange(dest, items, now):
        if isinstance(ex, FieldRefused):
            continue
        if isinstance(ex, Rejected):
            out.append(ex)
        elif isinstance(ex.outcome, FollowUp):
            continue
        elif isinstance(ex.outcome, Sequence):
            out.extend(ex.outcome)
        else:
            out.append(ex.outcome)
    return out


class _Authorizing:
    """Sends a destination's requests with its OAuth2 token when it declares a grant: fetched
    at the first request, fetched again once after a 401 (the engine's rules, synchronously)."""

    def __init__(self, dest: Destination, client: httpx.Client) -> None:
        self.grant = dest.token_grant()
        self.client = client
        self.token: Token | None = None

    def _fetch(self) -> Token:
        assert self.grant is not None
        refresh = self.token.refresh_token if self.token is not None else None
        response = self.client.send(self.grant.token_request(time.time(), refresh))
        self.token = read_token(response, self.grant, time.time())
        return self.token

    def send(self, request: httpx.Request) -> httpx.Response:
        if self.grant is None:
            return self.client.send(request)
        token = self.token or self._fetch()
        response = self.client.send(authorize(request, self.grant, token))
        if response.status_code == 401:
            response = self.client.send(authorize(request, self.grant, self._fetch()))
        return response
