"""Replay: route kept messages through the *current* filter and mapping.

    plans = plan_replay(loaded, outbox, rows)           # what each row would become
    requeue(outbox, "dead", plans)                      # queue them (fresh attempts and age)

The outbox keeps every accepted message, as the profile step enriched it, for
`outbox.keep_messages` (docs/delivery.md, "Replay"). A replayed row is re-routed from its kept
message by default, so a mapping fixed after the row died is what is sent; `as_stored` sends
the payload rendered when the message was accepted. A row whose message is no longer kept
(past the retention, a system event, a person erased since) is sent as stored, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crossdock.config import LoadedConfig
from crossdock.errors import MessageError
from crossdock.models import EnrichedMessage
from crossdock.outbox.base import DeadLetter, Outbox
from crossdock.pipeline import Pipeline, ProfileHook

#: how a replayed row is queued, or why it is not (`Planned.how`)
REROUTED = "re-routed"
AS_STORED = "as stored"
NOT_KEPT = "as stored: its message is no longer kept"
FILTERED = "not replayed: the current filter does not send it to this destination"
UNSHAPED = "not replayed: the current mapping cannot shape it"
UNCONFIGURED = "not replayed: the destination is not in the config"


@dataclass(frozen=True, slots=True)
class Planned:
    """One row of a replay: what is sent (`payload`, None when it is not replayed) and how
    it came to be (`how`: REROUTED, AS_STORED, NOT_KEPT, or why it is not replayed)."""

    row: DeadLetter
    how: str
    payload: dict[str, Any] | None
    detail: str = ""

    @property
    def queued(self) -> bool:
        return self.payload is not None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.row.id, "destination": self.row.destination,
                "message_id": self.row.message_id, "reason": self.row.reason,
                "how": self.how, "detail": self.detail, "payload": self.payload}


def plan_replay(loaded: LoadedConfig, outbox: Outbox, rows: Sequence[DeadLetter], *,
                as_stored: bool = False) -> list[Planned]:
    """What replaying `rows` would queue, row by row; changes nothing."""
    if as_stored:
        return [Planned(row, AS_STORED, row.payload) for row in rows]
    pipeline: Pipeline[ProfileHook] = Pipeline(loaded, outbox)
    destinations = {d.name: d for d in loaded.destinations}
    kept = outbox.kept([row.message_id for row in rows])
    plans = []
    for row in rows:
        destination = destinations.get(row.destination)
        message = kept.get(row.message_id)
        if destination is None:
            plans.append(Planned(row, UNCONFIGURED, None))
        elif message is None:
            plans.append(Planned(row, NOT_KEPT, row.payload))
        else:
            try:
                routed = pipeline.route_to(EnrichedMessage.from_json(message.enriched),
                                           [destination])
            except MessageError as exc:
                plans.append(Planned(row, UNSHAPED, None, "; ".join(exc.problems)))
                continue
            if routed:
                plans.append(Planned(row, REROUTED, routed[0].payload))
            else:
                plans.append(Planned(row, FILTERED, None))
    return plans


def requeue(outbox: Outbox, state: str, plans: Sequence[Planned]) -> int:
    """Queue the planned rows still in `state` with their payloads; returns how many."""
    return outbox.requeue(state, [(p.row.id, p.payload) for p in plans if p.queued])

