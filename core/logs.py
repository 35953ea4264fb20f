"""How the `crossdock` command logs: text for people, or JSON lines for a log pipeline.

    configure_logging(verbose=1, log_format="json")    once, before the command runs

JSON is one object per line: `time` (ISO 8601, UTC, milliseconds), `level`, `logger`,
`message`, then whichever of `destination`, `message_id`, `attempt`, `outcome` and `reason`
the record carries (the delivery engine logs one record per settled message with them, see
`DELIVERY_FIELDS`), and `exception` (the traceback) when there is one.

Levels: warnings by default, -v info, -vv debug. APScheduler says "Running job ..." at info
for every timer run (the due-sweep runs every second), so its loggers stay at warnings until
-vv: at -v they drowned what the daemon said.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO

import orjson

#: the fields a delivery log record carries (`extra=` of the engine's records)
DELIVERY_FIELDS = ("destination", "message_id", "attempt", "outcome", "reason")

LOG_FORMATS = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: libraries whose info lines are routine chatter: shown from -vv on
CHATTY = ("apscheduler",)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in DELIVERY_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        # default=str: a value a library put in a record must never stop the log line
        return orjson.dumps(entry, default=str).decode()


def configure_logging(verbose: int, log_format: str = "text",
                      stream: IO[str] | None = None) -> None:
    """The root logger's handler (on stderr) and levels for `verbose` (-v count). Like
    `logging.basicConfig`, it leaves a root logger that already has handlers alone (an
    application embedding the CLI, or pytest), but sets the chatty libraries' levels."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), handlers=[handler])
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
