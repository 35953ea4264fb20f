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

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from crossdock.models import as_utc, format_time

_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def parse_time(value: Any) -> datetime | None:
    """`value` as the message model reads a time (ISO 8601, or Unix seconds or
    milliseconds), a zoneless one taken as UTC; None when it is no time."""
    if value is None:
        return None
    try:
        return as_utc(_DATETIME.validate_python(value))
    except ValidationError:
        return None


class Stamper:
    """Stamps the messages of one request: what the request shares (when it arrived, the
    batch's sentAt) is worked out once, not once per message of a 500-message batch."""

    def __init__(self, received_at: datetime, batch_sent_at: Any = None) -> None:
        self.received_at = received_at
        self.received_iso = format_time(received_at)
        self.batch_sent_at = batch_sent_at
        self._batch_sent = parse_time(batch_sent_at)

    def __call__(self, raw: Any) -> Any:
        """One received message (a JSON object; anything else is returned as it is, for the
        model to refuse) with receivedAt, sentAt and the corrected timestamp set."""
        if not isinstance(raw, dict):
            return raw
        out = {**raw, "receivedAt": self.received_iso}
        sent_value = raw.get("sentAt")
        if sent_value is None:
            sent_value, sent = self.batch_sent_at, self._batch_sent
        else:
            sent = parse_time(sent_value)
        # RudderStack's SDKs send the device's time as originalTimestamp, Segment's as
        # timestamp.
        client_value = raw.get("originalTimestamp")
        if client_value is None:
            client_value = raw.get("timestamp")
        if client_value is None:
            out["timestamp"] = self.received_iso
        elif raw.get("timestamp") is None:
            out["timestamp"] = client_value
        if sent_value is None:
            return out
        out["sentAt"] = sent_value
        client = parse_time(client_value)
        if sent is None or client is None:
            return out
        try:
            corrected = self.received_at - (sent - client)
        except OverflowError:  # a clock beyond year 1..9999: no correction to make
            return out
        out["originalTimestamp"] = client_value
        out["timestamp"] = format_time(corrected)
        return out
