"""Replay and backfill: route kept messages through the *current* filter and mapping.

    plans = plan_replay(loaded, outbox, rows)           # what each row would become
    requeue(outbox, "dead", plans)                      # queue them (fresh attempts and age)
    report = run_backfill(loaded, outbox, "crm", since, until, progress=print)

The outbox keeps every accepted message, as the profile step enriched it, for
`outbox.keep_messages` (docs/delivery.md, "Replay"). A replayed row is re-routed from its kept
message by default, so a mapping fixed after the row died is what is sent; `as_stored` sends
the payload rendered when the message was accepted. A row whose message is no longer kept
(past the retention, a system event, a person erased since) is sent as stored, and says so.

A backfill routes the kept messages of a period to one destination: it only queues rows, so
the delivery workers send them at the destination's own rate limit and batch size, and a row
already there (the destination got the message when it was accepted) is skipped. Its
checkpoint (the last kept message routed, committed with the rows it queued) lets a second
run continue where an interrupted one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossdock.config import ConfiguredDestination, LoadedConfig
from crossdock.errors import MessageError
from crossdock.models import EnrichedMessage
from crossdock.outbox.base import DeadLetter, KeptMessage, NewRow, Outbox
from crossdock.pipeline import Pipeline, ProfileHook

#: how a replayed row is queued, or why it is not (`Planned.how`)
REROUTED = "re-routed"
AS_STORED = "as stored"
NOT_KEPT = "as stored: its message is no longer kept"
FILTERED = "not replayed: the current filter does not send it to this destination"
UNSHAPED = "not replayed: the current mapping cannot shape it"
UNCONFIGURED = "not replayed: the destination is not in the config"

#: kept messages routed per transaction of a backfill (its checkpoint moves with each)
BACKFILL_CHUNK = 500


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


@dataclass
class BackfillReport:
    """What a backfill did: kept messages read, rows queued, rows the destination already
    had, messages its filter does not send it, messages its mapping cannot shape."""

    destination: str
    read: int = 0
    queued: int = 0
    already: int = 0
    filtered: int = 0
    unshaped: list[tuple[str, str]] = field(default_factory=list)
    #: where the run started: 0 from the beginning, else a checkpoint of an earlier run
    resumed_after: int = 0
    checkpoint: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "read": self.read, "queued": self.queued,
                "already_there": self.already, "filtered_out": self.filtered,
                "unshaped": [{"message_id": m, "problems": p} for m, p in self.unshaped],
                "resumed_after": self.resumed_after, "checkpoint": self.checkpoint}


def backfill_key(destination: str, since: float, until: float | None) -> str:
    """The checkpoint's name: one per destination and period."""
    return f"backfill:{destination}:{since:.0f}:{'' if until is None else f'{until:.0f}'}"


def run_backfill(
    loaded: LoadedConfig, outbox: Outbox, destination: str, since: float,
    until: float | None = None, *, chunk: int = BACKFILL_CHUNK,
    progress: Callable[[BackfillReport], None] | None = None,
) -> BackfillReport:
    """Queue for `destination` the kept messages accepted in [since, until) that its current
    filter sends it, `chunk` messages per transaction, each committed with its checkpoint;
    `progress(report)` after each. Resumes after the checkpoint of an earlier run of the
    same destination and period."""
    (configured,) = [d for d in loaded.destinations if d.name == destination]
    pipeline: Pipeline[ProfileHook] = Pipeline(loaded, outbox)
    key = backfill_key(destination, since, until)
    report = BackfillReport(destination)
    report.resumed_after = report.checkpoint = outbox.checkpoint(key)
    while True:
        messages = outbox.kept_between(since, until, report.checkpoint, chunk)
        if not messages:
            return report
        rows = []
        for message in messages:
            try:
                rows += _routed(pipeline, message, configured, report)
            except MessageError as exc:
                report.unshaped.append((message.message_id, "; ".join(exc.problems)))
        with outbox.transaction():
            new = outbox.enqueue(rows)
            outbox.save_checkpoint(key, messages[-1].seq)
        report.read += len(messages)
        report.queued += new
        report.already += len(rows) - new
        report.checkpoint = messages[-1].seq
        if progress is not None:
            progress(report)


def _routed(pipeline: Pipeline[ProfileHook], message: KeptMessage,
            configured: ConfiguredDestination, report: BackfillReport) -> list[NewRow]:
    routed = pipeline.route_to(EnrichedMessage.from_json(message.enriched), [configured])
    if not routed:
        report.filtered += 1
    return routed

