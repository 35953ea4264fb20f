"""Destinations routed alike: a message is routed once for all of them, their rows share the
payload, and the outbox encodes it once. What each destination gets does not change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from route_helpers import msg, probe_type

from crossdock.loader import parse_config
from crossdock.models import EnrichedMessage
from crossdock.outbox import base
from crossdock.outbox.base import NewRow, encoded_payloads
from crossdock.outbox.payload_json import encode_payload
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline
from crossdock.route.router import route, same_routes


def _loaded(tmp_path: Path, **destinations: dict[str, Any]) -> Any:
    raw = {"outbox": {"url": f"sqlite:///{tmp_path / 'o.db'}"},
           "destinations": {name: {"plugin": "probe", **spec}
                            for name, spec in destinations.items()}}
    return parse_config(raw, base_dir=tmp_path, env={}, types={"probe": probe_type()})


def test_same_routes_groups_equal_definitions_only(tmp_path: Path) -> None:
    loaded = _loaded(
        tmp_path, a={}, b={}, c={"filter": {"events": {"allow": ["Signed Up"]}}},
        d={}, e={"rules": {"only_identified": True}},
        f={"mapping": {"templates": {"t": "{{ event }}"}}},
        g={"mapping": {"templates": {"t": "{{ event }}"}}})
    # Templates are never shared: a plugin may give their environment impure functions.
    assert same_routes(loaded.routed) == [0, 0, 2, 0, 4, 5, 6]


def test_twins_share_one_payload_equal_to_routing_each_alone(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, a={}, b={"filter": {"event_attributes": {"deny": ["x"]}}},
                     c={})
    pipeline = Pipeline(loaded, SQLiteOutbox(tmp_path / "o.db"))
    enriched = msg(properties={"x": 1, "y": 2})
    rows = pipeline.route_to(enriched, loaded.routed)
    assert [r.destination for r in rows] == ["a", "b", "c"]
    assert rows[0].payload is rows[2].payload
    assert rows[1].payload is not rows[0].payload
    for row, destination in zip(rows, loaded.routed, strict=True):
        assert row.payload == route(enriched, destination)


def test_a_twin_left_out_by_the_message_still_lets_the_next_route(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, a={}, b={})
    pipeline = Pipeline(loaded, SQLiteOutbox(tmp_path / "o.db"))
    enriched: EnrichedMessage = msg()
    enriched.destinations = frozenset({"b"})
    rows = pipeline.route_to(enriched, loaded.routed)
    assert [(r.destination, r.payload) for r in rows] == [
        ("b", route(enriched, loaded.routed[1]))]


def test_a_shared_payload_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def counting(payload: Any) -> str:
        calls.append(payload)
        return encode_payload(payload)

    monkeypatch.setattr(base, "encode_payload", counting)
    shared, other = {"a": 1}, {"a": 1}
    rows = [NewRow("x", "m", shared), NewRow("y", "m", shared), NewRow("z", "m", other)]
    assert encoded_payloads(rows) == ['{"a":1}'] * 3
    assert len(calls) == 2
