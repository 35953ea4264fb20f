"""What a transformEvent's answer means, for the engine and `crossdock functions test` alike
(and a destination function's: `interpret_values`, each object it returns a request the
plugin checks).

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
    objects = _objects(result, entry, "an event", EVENTS_HINT)
    if isinstance(objects, str):
        return Transformed(error=objects, logs=result.logs)
    events: list[dict[str, Any]] = []
    for index, (where, event) in enumerate(objects):
        for key in ("type", "messageId"):
            if not isinstance(event.get(key), str):
                return Transformed(error=f"{where}: {key} must be a string (keep the routed "
                                         "event's fields; docs/plugin-reference.md)",
                                   logs=result.logs)
        if index and event["messageId"] == message_id:
            event = {**event, "messageId": f"{message_id}:{index}"}
        events.append(event)
    return Transformed(events=events, logs=result.logs)


def interpret_values(result: CallResult, entry: str, what: str, hint: str) -> Transformed:
    """A destination function's answer: each object it returns (`what`: "a request") is one
    value for the plugin, which checks its fields; null or [] none (dropped)."""
    objects = _objects(result, entry, what, hint)
    if isinstance(objects, str):
        return Transformed(error=objects, logs=result.logs)
    return Transformed(events=[value for _, value in objects], logs=result.logs)


#: what a transformEvent may return, said in its errors
EVENTS_HINT = "return the event, null to drop it, or a list of events"
#: what a destination function (onEvent) may return, said in its errors
REQUESTS_HINT = ("return a request ({method, url, headers, body}), a list of requests, or "
                 "null to send nothing")


def _objects(result: CallResult, entry: str, what: str,
             hint: str) -> list[tuple[str, dict[str, Any]]] | str:
    """The objects a call returned, each with where it stands ("transformEvent returned [1]"),
    or the error: a failed call, nothing returned, or a value that is no object."""
    if result.error is not None:
        return f"{entry} failed: {result.error}"
    if not result.returned:
        return f"{entry} returned nothing (undefined): {hint}"
    value = result.value
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    objects: list[tuple[str, dict[str, Any]]] = []
    for index, one in enumerate(values):
        where = f"{entry} returned" + (f" [{index}]" if isinstance(value, list) else "")
        if not isinstance(one, dict):
            return f"{where}: {_kind(one)}, not {what} (an object); {hint}"
        objects.append((where, one))
    return objects


#: a JSON value's kind as an error names it (bool before int: True is an int in Python)
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "a list"))


def _kind(value: Any) -> str:
    return next((name for kinds, name in _KINDS if isinstance(value, kinds)), "a value")


#: what a destination function's classify may answer (or null: the plugin's reading)
VERDICTS = ("delivered", "retry", "dead")


@dataclass(frozen=True, slots=True)
class Reading:
    """A destination function's reading of an answer: one of VERDICTS, with the reason and
    the seconds to wait before a retry it gave (None: the engine's own)."""

    outcome: str
    reason: str | None = None
    after: float | None = None


def interpret_reading(result: CallResult, entry: str) -> Reading | str | None:
    """What a classify call answered: a Reading, None (null or undefined: the usual
    reading), or the error as text (a throw, a timeout, an answer that is none of these)."""
    if result.error is not None:
        return f"{entry} failed: {result.error}"
    value = result.value
    if not result.returned or value is None:
        return None
    hint = (f"return one of {', '.join(VERDICTS)}, an object {{outcome, reason, "
            "retryAfter}, or null for the usual reading")
    if isinstance(value, str):
        value = {"outcome": value}
    if not isinstance(value, dict):
        return f"{entry} returned: {_kind(value)}; {hint}"
    outcome, reason, after = value.get("outcome"), value.get("reason"), value.get("retryAfter")
    if outcome not in VERDICTS:
        return f"{entry} returned outcome {str(outcome)[:40]!r}; {hint}"
    if reason is not None and not isinstance(reason, str):
        return f"{entry} returned reason: {_kind(reason)}, not a string"
    if after is not None and (isinstance(after, bool) or not isinstance(after, int | float)
                              or after < 0):
        return f"{entry} returned retryAfter: not a number of seconds (0 or more)"
    return Reading(str(outcome), reason, None if after is None else float(after))
