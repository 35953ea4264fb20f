"""Segment's clock fields, stamped on each message as the collector receives it.

A device's clock can be off by minutes or years, so the time a message says it happened
(`timestamp`) is corrected by how far the device's clock was off when it sent the message:

    receivedAt         = the collector's clock when the request arrived
    sentAt             = the device's clock when it sent the request (per message, else the
                         batch's top-level sentAt, which the server SDKs set)
    originalTimestamp  = the device's timestamp, kept as it came
    timestamp          = receivedAt - (sentAt - originalTimestamp)

Without a sentAt there is no skew to measure: the timestamp stays as the client sent it. A
message that says nothing of when it happened gets receivedAt as its timestamp. A value that
is not a time is left for the message model to refuse, by its field name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def parse_time(value: Any) -> datetime | None:
    """`value` as the message model reads a time (ISO 8601, or Unix seconds or
    milliseconds), a zoneless one taken as UTC; None when it is no time."""
    if value is None:
        return None
    try:
        parsed = _DATETIME.validate_python(value)
    except ValidationError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def stamp(raw: Any, received_at: datetime, batch_sent_at: Any = None) -> Any:
    """One received message (a JSON object; anything else is returned as it is, for the
    model to refuse) with receivedAt, sentAt and the corrected timestamp set."""
    if not isinstance(raw, dict):
        return raw
    out = {**raw, "receivedAt": iso(received_at)}
    sent_value = raw.get("sentAt")
    if sent_value is None:
        sent_value = batch_sent_at
    # RudderStack's SDKs send the device's time as originalTimestamp, Segment's as timestamp.
    client_value = raw.get("originalTimestamp")
    if client_value is None:
        client_value = raw.get("timestamp")
    if client_value is None:
        out["timestamp"] = out["receivedAt"]
    elif raw.get("timestamp") is None:
        out["timestamp"] = client_value
    if sent_value is None:
        return out
    out["sentAt"] = sent_value
    sent, client = parse_time(sent_value), parse_time(client_value)
    if sent is None or client is None:
        return out
    try:
        corrected = received_at - (sent - client)
    except OverflowError:  # a clock beyond year 1..9999: no correction to make
        return out
    out["originalTimestamp"] = client_value
    out["timestamp"] = iso(corrected)
    return out
