"""What a transformEvent's answer means, for the engine and `crossdock functions test` alike.

    the event (an object)   -> sent, as changed
    null, or []             -> dropped (acknowledged, nothing sent, counted with the reason)
    a list of events        -> each sent; the row is delivered when all of them are
    anything else, a throw, a timeout, running out of memory, returning nothing (undefined)
                            -> the message is dead-lettered with the error

Each event must still be a routed payload (docs/plugin-reference.md): an object whose `type`
is a string and whose `messageId` is a string. A list's events after the first that kept the
message's id get "<id>:<n>" (n from 1), so a destination that drops repeats by messageId keeps
them all, and a replay gives the same ids again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossdock.functions.runtime import CallResult

#: the reason a row the function dropped is counted under
DROPPED = "dropped by transform"


@dataclass(slots=True)
class Transformed:
    """One message through a transformEvent: `events` to send, or `error` (dead letter).
    No events and no error: dropped."""

    events: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    logs: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        return self.error is None and not self.events


def interpret(result: CallResult, message_id: str, entry: str) -> Transformed:
    """The events a call's result stands for (or why it failed)."""
    if result.error is not None:
        return Transformed(error=f"{entry} failed: {result.error}", logs=result.logs)
    if not result.returned:
        return Transformed(error=f"{entry} returned nothing (undefined): return the event, "
                                 "null to drop it, or a list of events", logs=result.logs)
    value = result.value
    if value is None:
        return Transformed(logs=result.logs)
    values = value if isinstance(value, list) else [value]
    events: list[dict[str, Any]] = []
    for index, event in enumerate(values):
        where = f"{entry} returned" + (f" [{index}]" if isinstance(value, list) else "")
        if not isinstance(event, dict):
            return Transformed(error=f"{where}: {_kind(event)}, not an event (an object); "
                                     "return the event, null to drop it, or a list of events",
                               logs=result.logs)
        for key in ("type", "messageId"):
            if not isinstance(event.get(key), str):
                return Transformed(error=f"{where}: {key} must be a string (keep the routed "
                                         "event's fields; docs/plugin-reference.md)",
                                   logs=result.logs)
        if index and event["messageId"] == message_id:
            event = {**event, "messageId": f"{message_id}:{index}"}
        events.append(event)
    return Transformed(events=events, logs=result.logs)


#: a JSON value's kind as an error names it (bool before int: True is an int in Python)
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "a list"))


def _kind(value: Any) -> str:
    return next((name for kinds, name in _KINDS if isinstance(value, kinds)), "a value")
