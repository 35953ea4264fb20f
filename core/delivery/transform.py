"""The transform step: an operator's transformEvent, between the outbox lease and the plugin.

    outbox --lease--> transform (this module) --> plugin.build_requests --> send --> settle

A destination with `transform:` in its config has each leased row's routed payload passed
through its JavaScript function (crossdock.functions) before the plugin builds requests. It
runs here, in step 5, and not in step 3 (route), because:
  - a function that throws, loops or runs out of memory dead-letters *that* row with the
    error, through the worker's own settlement; `crossdock dead-letters replay` after the
    function is fixed runs the new code on the stored payload;
  - the accept transaction (and the collector's answer) never waits on operator code;
  - a changed function applies to every row not delivered yet.

What a result means: crossdock.functions.events. A row whose function returns a list is sent
as that many items: the first keeps the row's id, the others get ids of their own below zero
(never an outbox id) and their fates are folded back into the row's (`fold`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from crossdock.destination import OutboxItem
from crossdock.functions.config import TRANSFORM_ENTRY
from crossdock.functions.events import DROPPED, interpret
from crossdock.functions.runtime import LoadedFunction
from crossdock.outbox.base import Settlement


@dataclass(slots=True)
class TransformedBatch:
    """A leased batch after the transform: the items to build requests for, and the rows
    settled already (dropped: acknowledged; failed: dead with the error)."""

    items: list[OutboxItem] = field(default_factory=list)
    #: an extra item's id -> the row it came from
    origin: dict[int, int] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    def fold(self, settlement: Settlement) -> Settlement:
        """The settlement of the transformed items as one fate per leased row: a row is
        delivered when all its items are; else dead if one is dead, else retried if one is
        retried (at the latest time asked), else back to the queue."""
        origin = self.origin
        if not origin and not self.dropped and not self.failed:
            return settlement
        rank: dict[int, tuple[int, float, str]] = {}

        def worse(item_id: int, fate: tuple[int, float, str]) -> None:
            row = origin.get(item_id, item_id)
            held = rank.get(row)
            if held is None or fate[:2] > held[:2]:
                rank[row] = fate

        for item_id in settlement.acks:
            worse(item_id, (0, 0.0, ""))
        for item_id in settlement.releases:
            worse(item_id, (1, 0.0, ""))
        for item_id, due, error in settlement.retries:
            worse(item_id, (2, due, error))
        for item_id, reason in settlement.deads:
            worse(item_id, (3, 0.0, reason))
        folded = Settlement()
        for row, (level, due, text) in rank.items():
            if level == 0:
                folded.acks.append(row)
            elif level == 1:
                folded.releases.append(row)
            elif level == 2:
                folded.retries.append((row, due, text))
            else:
                folded.deads.append((row, text))
        folded.acks += self.dropped
        folded.deads += self.failed
        return folded


class TransformStep:
    """One destination's transformEvent, applied to leased rows."""

    def __init__(self, destination: str, function: LoadedFunction) -> None:
        self.destination = destination
        self.function = function
        self._extra_ids = itertools.count(-1, -1)

    def apply(self, items: Sequence[OutboxItem]) -> TransformedBatch:
        """Run the function on every row (one round trip to the function process); blocking,
        so the worker calls it in a thread."""
        results = self.function.call(TRANSFORM_ENTRY, [
            (item.payload, {"destination": self.destination, "messageId": item.message_id,
                            "attempt": item.attempts}) for item in items])
        batch = TransformedBatch()
        for item, result in zip(items, results, strict=True):
            transformed = interpret(result, item.message_id, TRANSFORM_ENTRY)
            if transformed.error is not None:
                batch.failed.append((item.id, f"transform {self.function.name}: "
                                              f"{transformed.error}"))
                continue
            if transformed.dropped:
                batch.dropped.append(item.id)
                continue
            for index, event in enumerate(transformed.events):
                item_id = item.id if index == 0 else next(self._extra_ids)
                if index:
                    batch.origin[item_id] = item.id
                batch.items.append(OutboxItem(item_id, str(event["messageId"]), event,
                                              item.attempts, item.created_at,
                                              item.attempted_at))
        return batch


__all__ = ["DROPPED", "TransformStep", "TransformedBatch"]
