"""Prometheus text exposition (format 0.0.4) for /metrics, without a client library: a few
counters kept in memory plus gauges read from the store at scrape time."""

from __future__ import annotations

import threading
from collections.abc import Iterable


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """In-process counters: `inc("name", 1, endpoint="/v1/track")`."""

    HELP = {
        "crossdock_collector_requests_total": "HTTP requests by endpoint and status code",
        "crossdock_collector_messages_total": "messages by outcome (accepted, duplicate, bad)",
        "crossdock_collector_rate_limited_total": "requests refused with 429",
        "crossdock_collector_auth_failures_total":
            "requests refused for a missing or wrong key, or an unknown account",
        "crossdock_collector_duplicate_requests_total":
            "requests whose x-request-id was seen inside the dedup window",
    }

    def __init__(self) -> None:
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get((name, tuple(sorted(labels.items()))), 0)

    def render(self, gauges: Iterable[tuple[str, str, str, dict[str, str], float]] = ()) -> str:
        """The exposition text; `gauges` adds (name, type, help, labels, value) samples."""
        lines: list[str] = []
        with self._lock:
            counters = sorted(self._counters.items())
        seen: set[str] = set()
        for name, help_text in self.HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            seen.add(name)
            for (n, pairs), value in counters:
                if n == name:
                    lines.append(f"{name}{_labels(dict(pairs))} {_number(value)}")
        for name, kind, help_text, labels, sample in gauges:
            if name not in seen:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                seen.add(name)
            lines.append(f"{name}{_labels(labels)} {_number(sample)}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
