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

A destination function (`FunctionStep`: a plugin's `script()`, the `function` destination)
runs the same way in the same place: its entry gets (event, settings, metadata) and each
object it returns (a request) is an item for the plugin, which checks and builds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from crossdock.destination import (
    DELIVERED,
    Failed,
    OutboxItem,
    Outcome,
    PlannedRequest,
    Retry,
    Script,
    short_body,
)
from crossdock.functions.config import TRANSFORM_ENTRY
from crossdock.functions.events import (
    DROPPED,
    REQUESTS_HINT,
    Transformed,
    interpret,
    interpret_reading,
    interpret_values,
)
from crossdock.functions.runtime import CallResult, LoadedFunction
from crossdock.outbox.base import Settlement
from crossdock.redact import scrub

#: the reason a row a destination function returned null (or []) for is counted under
FUNCTION_SENT_NOTHING = "nothing to send (function returned null)"


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

    #: what a failed row's dead letter starts with
    label = "transform"
    #: the reason a row the function returned null for is counted under
    dropped = DROPPED

    def __init__(self, destination: str, function: LoadedFunction) -> None:
        self.destination = destination
        self.function = function
        self._extra_ids = itertools.count(-1, -1)

    def arguments(self, item: OutboxItem) -> list[Any]:
        """The function's arguments for one row."""
        return [item.payload, self.metadata(item)]

    def metadata(self, item: OutboxItem) -> dict[str, Any]:
        return {"destination": self.destination, "messageId": item.message_id,
                "attempt": item.attempts}

    def interpret(self, result: CallResult, item: OutboxItem) -> Transformed:
        return interpret(result, item.message_id, TRANSFORM_ENTRY)

    def message_id(self, item: OutboxItem, value: dict[str, Any], index: int) -> str:
        """The message id of the `index`th value the function returned for `item`."""
        return str(value["messageId"])

    def hide(self, text: str) -> str:
        """An error as it is stored and logged."""
        return text

    @property
    def reads_answers(self) -> bool:
        """Whether the function reads the destination's answers (`classify`)."""
        return False

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome | None:
        """The function's reading of an answer; None: the plugin's. Blocking (a thread)."""
        return None

    def apply(self, items: Sequence[OutboxItem]) -> TransformedBatch:
        """Run the function on every row (one round trip to the function process); blocking,
        so the worker calls it in a thread."""
        results = self.function.call(self.entry, [self.arguments(item) for item in items])
        batch = TransformedBatch()
        for item, result in zip(items, results, strict=True):
            transformed = self.interpret(result, item)
            if transformed.error is not None:
                batch.failed.append((item.id, self.hide(
                    f"{self.label} {self.function.name}: {transformed.error}")))
                continue
            if transformed.dropped:
                batch.dropped.append(item.id)
                continue
            for index, value in enumerate(transformed.events):
                item_id = item.id if index == 0 else next(self._extra_ids)
                if index:
                    batch.origin[item_id] = item.id
                batch.items.append(OutboxItem(item_id, self.message_id(item, value, index),
                                              value, item.attempts, item.created_at,
                                              item.attempted_at))
        return batch

    @property
    def entry(self) -> str:
        return TRANSFORM_ENTRY


class FunctionStep(TransformStep):
    """A destination function (`Destination.script()`, the `function` destination): its
    entry gets (event, settings, metadata) and returns values for the plugin (requests),
    each an item of its own; the settings' secrets are kept out of every error."""

    label = "function"
    dropped = FUNCTION_SENT_NOTHING

    def __init__(self, destination: str, function: LoadedFunction, script: Script) -> None:
        super().__init__(destination, function)
        self.script = script
        self.settings = {name: value.get_secret_value() if isinstance(value, SecretStr)
                         else value for name, value in script.settings.items()}
        self.secrets = sorted((value.get_secret_value() for value in script.settings.values()
                               if isinstance(value, SecretStr) and value.get_secret_value()),
                              key=len, reverse=True)

    @property
    def entry(self) -> str:
        return self.script.entry

    def arguments(self, item: OutboxItem) -> list[Any]:
        return [item.payload, self.settings, self.metadata(item)]

    def interpret(self, result: CallResult, item: OutboxItem) -> Transformed:
        return interpret_values(result, self.entry, "a request", REQUESTS_HINT)

    def message_id(self, item: OutboxItem, value: dict[str, Any], index: int) -> str:
        return item.message_id if index == 0 else f"{item.message_id}:{index}"

    def hide(self, text: str) -> str:
        return scrub(text, self.secrets)

    @property
    def reads_answers(self) -> bool:
        name = self.script.classify
        return name is not None and name in self.function.defined

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome | None:
        """`classify(response, settings, metadata)` in the function process: its reading,
        None for the plugin's; a failing classify is a dead letter with the error (the same
        code reads the same answer the same way)."""
        name = self.script.classify
        assert name is not None
        answer = {"status": response.status_code,
                  "headers": {k: v for k, v in response.headers.items()},
                  "body": response.content.decode(errors="replace")}
        [result] = self.function.call(name, [[answer, self.settings,
                                              self.metadata(planned.items[0])]])
        reading = interpret_reading(result, name)
        if reading is None:
            return None
        if isinstance(reading, str):
            return Failed(self.hide(f"{self.label} {self.function.name}: {reading}"))
        reason = self.hide(reading.reason or f"HTTP {response.status_code}: "
                                             f"{short_body(response)}")
        if reading.outcome == "delivered":
            return DELIVERED
        if reading.outcome == "retry":
            return Retry(reason, reading.after)
        return Failed(reason)


__all__ = ["DROPPED", "FunctionStep", "TransformStep", "TransformedBatch"]
