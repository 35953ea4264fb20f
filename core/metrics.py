"""Metrics: what the ops listener's /metrics shows (crossdock.ops), and the collector's own
request counters.

The ops listener's metrics are kept by `prometheus_client`, the Prometheus project's own
Python client: histograms with their buckets, counters that are safe across threads (the
collector counts from its thread pool, the workers from the loop), process metrics (CPU,
memory, open files, start time) and an exposition that Prometheus' parser is tested against,
none of which is ours to get right again. Figures read from the database (queue depth,
oldest wait, circuits, profiles) are read at scrape time by `StateReader`, a
prometheus_client custom collector, so they are never stale and cost nothing between scrapes.

The collector's own /metrics (docs/collector.md) keeps its text, rendered here by
`Metrics.render` from the same samples (`outbox_samples`, `profile_samples`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from crossdock.delivery.observer import Settled
from crossdock.outbox.base import CIRCUIT_STATES, DestinationCounts, shared_sql
from crossdock.pipeline import Pipeline

if TYPE_CHECKING:
    from crossdock.profiles.store import ProfileStore

#: (name, type "counter" or "gauge", help, labels, value): one sample read at scrape time
Sample = tuple[str, str, str, dict[str, str], float]

#: seconds: a request to a destination API (a local fake answers in milliseconds, a vendor
#: in tens to hundreds of them; the timeout is 30 s by default)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: seconds from acceptance to delivery: under a second when all is well, hours through an
#: outage (the retry budget, max_age, is a day by default)
ACCEPT_TO_DELIVER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                             900.0, 3600.0, 6 * 3600.0, 24 * 3600.0)
#: tries a message took before it was delivered or went dead
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 8, 12, 20, 50)


class DeliveryMetrics:
    """The delivery workers' counts and latencies (a crossdock.delivery DeliveryObserver)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "crossdock_deliveries", "tries of messages by destination and outcome: delivered, "
            "retry (to be retried), dead (a dead letter)", ["destination", "outcome"],
            registry=registry)
        self.attempts = Histogram(
            "crossdock_delivery_attempts", "tries a message took until it was delivered or "
            "went dead", ["destination"], buckets=ATTEMPT_BUCKETS, registry=registry)
        self.request_seconds = Histogram(
            "crossdock_destination_request_seconds", "time of each request to a destination "
            "(HTTP, token requests, file puts), answered or failed", ["destination"],
            buckets=REQUEST_BUCKETS, registry=registry)
        self.accept_to_deliver = Histogram(
            "crossdock_accept_to_deliver_seconds", "time from a message's acceptance to its "
            "delivery", ["destination"], buckets=ACCEPT_TO_DELIVER_BUCKETS, registry=registry)

        #: each destination's labelled children, looked up once: `labels()` takes a lock and
        #: builds a key on every call, and these run once per message
        self._children: dict[str, _Children] = {}

    def _of(self, destination: str) -> _Children:
        children = self._children.get(destination)
        if children is None:
            children = self._children[destination] = _Children(
                {outcome: self.deliveries.labels(destination, outcome)
                 for outcome in ("delivered", "retry", "dead")},
                self.attempts.labels(destination), self.request_seconds.labels(destination),
                self.accept_to_deliver.labels(destination))
        return children

    def request(self, destination: str, seconds: float) -> None:
        self._of(destination).request_seconds.observe(seconds)

    def settled(self, destination: str, outcome: Settled, attempt: int,
                waited: float | None) -> None:
        children = self._of(destination)
        children.deliveries[outcome].inc()
        if outcome != "retry":
            children.attempts.observe(attempt)
        if waited is not None:
            children.accept_to_deliver.observe(waited)


@dataclass(frozen=True, slots=True)
class _Children:
    """One destination's series of DeliveryMetrics."""

    deliveries: dict[str, Counter]
    attempts: Histogram
    request_seconds: Histogram
    accept_to_deliver: Histogram


def outbox_samples(counts: dict[str, DestinationCounts], now: float) -> list[Sample]:
    """Per destination: rows by state, rows waiting, the oldest one's wait, the circuit."""
    samples: list[Sample] = []
    by_destination = sorted(counts.items())
    for destination, c in by_destination:
        for state in ("queued", "leased", "retrying", "delivered", "dead"):
            samples.append(("crossdock_outbox_rows", "gauge",
                            "outbox rows by destination and state (retrying: queued rows "
                            "tried before)", {"destination": destination, "state": state},
                            getattr(c, state)))
    for destination, c in by_destination:
        samples.append(("crossdock_outbox_waiting", "gauge",
                        "messages waiting for the destination (queued and leased rows)",
                        {"destination": destination}, c.queued + c.leased))
    for destination, c in by_destination:
        oldest = c.oldest_waiting_at
        samples.append(("crossdock_outbox_oldest_waiting_seconds", "gauge",
                        "how long the oldest message still waiting for the destination "
                        "has waited (0: none waits)", {"destination": destination},
                        0.0 if oldest is None else round(max(0.0, now - oldest), 3)))
    for destination, c in by_destination:
        for state in CIRCUIT_STATES:
            samples.append(("crossdock_circuit_state", "gauge",
                            "each destination's circuit: 1 for the state it is in "
                            "(closed, open, probing), 0 for the others",
                            {"destination": destination, "state": state},
                            1.0 if c.circuit == state else 0.0))
    for destination, c in by_destination:
        samples.append(("crossdock_circuit_failures", "gauge",
                        "failed requests in a row to the destination",
                        {"destination": destination}, c.circuit_failures))
    return samples


def profile_samples(stats: dict[str, int]) -> list[Sample]:
    """The profile store's counters (ProfileStore.stats) as samples."""
    stats = dict(stats)
    samples: list[Sample] = [
        ("crossdock_profiles", "gauge", "live profiles by kind", {"kind": "known"},
         stats.pop("profiles_known")),
        ("crossdock_profiles", "gauge", "live profiles by kind", {"kind": "anonymous"},
         stats.pop("profiles_anonymous")),
        ("crossdock_sessions_open", "gauge", "sessions not yet ended", {},
         stats.pop("sessions_open")),
        ("crossdock_profile_merges", "gauge", "recorded profile merges", {},
         stats.pop("merges")),
    ]
    for name, value in sorted(stats.items()):
        if name.startswith("attribute_"):
            samples.append(("crossdock_attribute_problems_total", "counter",
                            "attribute values rejected or truncated, by rule",
                            {"rule": name.removeprefix("attribute_")}, value))
        else:
            samples.append((f"crossdock_{name}_total", "counter", name, {}, value))
    return samples


def profile_store_samples(pipeline: Pipeline[ProfileStore]) -> list[Sample]:
    """The pipeline's profile store's counters as samples (none without profiles). Read
    through the pipeline's declared store (`Pipeline[ProfileStore].profiles`): the collector
    once looked for the store's class and lost every profile gauge whenever an audience
    watcher wrapped it."""
    store = pipeline.profiles
    if store is None:
        return []
    with pipeline.outbox.transaction() as db:
        return profile_samples(store.stats(shared_sql(db)))


class StateReader(PrometheusCollector):
    """A prometheus_client collector of samples read at scrape time from `sources` (the
    outbox's counts, the profile store's, the collector's request counters)."""

    def __init__(self, sources: Iterable[Callable[[], list[Sample]]]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for source in self.sources:
            for name, kind, help_text, labels, value in source():
                family = families.get(name)
                if family is None:
                    names = sorted(labels)
                    family = (CounterMetricFamily(name, help_text, labels=names)
                              if kind == "counter"
                              else GaugeMetricFamily(name, help_text, labels=names))
                    families[name] = family
                family.add_metric([labels[k] for k in sorted(labels)], value)
        yield from families.values()


def ops_registry(sources: Iterable[Callable[[], list[Sample]]]
                 ) -> tuple[CollectorRegistry, DeliveryMetrics]:
    """The ops listener's registry: delivery metrics, `sources` read at scrape time, and the
    process (CPU, memory, file descriptors), Python platform and garbage collector metrics."""
    registry = CollectorRegistry(auto_describe=True)
    delivery = DeliveryMetrics(registry)
    registry.register(StateReader(sources))
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry, delivery


# -- the collector's request counters ------------------------------------------------------


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The collector's in-process counters: `inc("name", 1, endpoint="/v1/track")`. Shown on
    the collector's /metrics (`render`) and, through `samples`, on the ops listener's."""

    HELP = {
        "crossdock_collector_requests_total": "HTTP requests by endpoint and status code",
        "crossdock_collector_messages_total": "messages by outcome (accepted, duplicate, bad)",
        "crossdock_collector_rate_limited_total": "requests refused with 429",
        "crossdock_collector_auth_failures_total":
            "requests refused for a missing or wrong key, or an unknown account",
        "crossdock_collector_duplicate_requests_total":
            "requests whose x-request-id was seen inside the dedup window",
        "crossdock_collector_accept_transactions_total":
            "accept transactions the tracking requests were committed in (group commit)",
        "crossdock_collector_accept_fallbacks_total":
            "PostgreSQL groups whose shared accept failed, retried request by request",
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

    def samples(self) -> list[Sample]:
        """Every counter's samples, by name in HELP's order."""
        with self._lock:
            counters = sorted(self._counters.items())
        return [(name, "counter", self.HELP[name], dict(pairs), value)
                for name in self.HELP for (n, pairs), value in counters if n == name]

    def render(self, gauges: Iterable[Sample] = ()) -> str:
        """The exposition text (format 0.0.4); `gauges` adds samples read at scrape time."""
        lines: list[str] = []
        seen: set[str] = set(self.HELP)
        samples = self.samples()
        for name, help_text in self.HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines += [f"{name}{_labels(labels)} {_number(value)}"
                      for n, _, _, labels, value in samples if n == name]
        for name, kind, help_text, labels, sample in gauges:
            if name not in seen:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                seen.add(name)
            lines.append(f"{name}{_labels(labels)} {_number(sample)}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))

