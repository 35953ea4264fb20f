"""crossdock.views: what `status` and `dead-letters` show (and the web console will), read
from a real SQLite outbox as typed data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossdock.config import LoadedConfig
from crossdock.loader import parse_config
from crossdock.outbox import open_outbox
from crossdock.outbox.base import DestinationCounts, NewRow, Outbox, RowQuery
from crossdock.views import (
    MissingRows,
    UnknownDestination,
    dead_letters,
    outbox_status,
    replay_rows,
)


def hook() -> dict[str, Any]:
    return {"plugin": "webhook", "settings": {"url": "http://127.0.0.1:9/in"},
            "delivery": {"allow_private_network": True}}


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return parse_config({"outbox": {"url": "sqlite:///outbox.db"},
                         "collector": {"enabled": False},
                         "destinations": {"zeta": hook(), "alpha": hook()}},
                        base_dir=tmp_path, env={})


@pytest.fixture
def outbox(loaded: LoadedConfig) -> Iterator[Outbox]:
    box = open_outbox(loaded.outbox_url)
    yield box
    box.close()


def kill(outbox: Outbox, destination: str, message_id: str, reason: str) -> int:
    """A row of `destination` leased and dead-lettered; returns its id."""
    outbox.enqueue([NewRow(destination, message_id, {"messageId": message_id})], now=0.0)
    (item,) = outbox.lease(destination, 1, 60, "w", now=0.0)
    outbox.dead(item.id, reason, "w", now=1.0)
    return item.id


def test_the_status_lists_the_configured_in_order_then_the_outbox_only(
    loaded: LoadedConfig, outbox: Outbox,
) -> None:
    outbox.enqueue([NewRow("alpha", "m1", {}), NewRow("gone", "m2", {})], now=0.0)
    found = outbox_status(loaded, outbox)
    assert [(d.name, d.in_outbox) for d in found.destinations] == [
        ("zeta", False), ("alpha", True), ("gone", True)]
    # An idle destination is zeros and a closed circuit, not missing.
    assert found.destinations[0].counts == DestinationCounts()
    assert found.destinations[1].counts.queued == 1
    assert found.daemons == []  # a SQLite outbox has no fleet


def test_dead_letters_of_one_destination_and_a_name_nobody_knows(
    loaded: LoadedConfig, outbox: Outbox,
) -> None:
    kill(outbox, "alpha", "m1", "400 bad email")
    kill(outbox, "zeta", "m2", "410 gone")
    letters = dead_letters(loaded, outbox, "alpha")
    assert [(d.destination, d.message_id, d.reason) for d in letters] == [
        ("alpha", "m1", "400 bad email")]
    with pytest.raises(UnknownDestination) as caught:
        dead_letters(loaded, outbox, "alpah")
    assert str(caught.value) == ("no destination 'alpah' in the config or its outbox "
                                 "(known: alpha, zeta)")


def test_replay_rows_name_the_ids_that_match_nothing(
    loaded: LoadedConfig, outbox: Outbox,
) -> None:
    first = kill(outbox, "alpha", "m1", "400 bad email")
    assert [r.id for r in replay_rows(loaded, outbox, RowQuery("dead", ids=[first]))] == [first]
    with pytest.raises(MissingRows) as caught:
        replay_rows(loaded, outbox, RowQuery("dead", "zeta", ids=[first, 999]))
    assert str(caught.value) == f"no dead letter with id {first}, 999 matching the filters"
