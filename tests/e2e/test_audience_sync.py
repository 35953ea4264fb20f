"""Issue 4's acceptance: 1,000 people change attributes over simulated days; the audience
`high_value: lifetime_value > 500` is kept in sync on change (and by a nightly full sync, and
when people are erased) with a Facebook Custom Audience and Mailchimp tags, each the real
plugin against its contract fake over loopback HTTP. At the end the fake Facebook audience and
the Mailchimp tag hold exactly the people in the audience. It runs on a SQLite outbox and on
a PostgreSQL one (a fresh schema in the `test` database on 127.0.0.1:5432; skipped, with the
reason, only when that server cannot be reached).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crossdock.audiences.sync import sync
from crossdock.delivery import deliver_once
from crossdock.loader import parse_config
from crossdock.outbox import open_outbox
from crossdock.outbox.pg_schema import temporary_schema
from crossdock.pipeline import build_pipeline
from crossdock.plugins.facebook_audience.fake import (
    DEFAULT_AUDIENCE,
    DEFAULT_TOKEN,
    FacebookAudienceFake,
)
from crossdock.plugins.facebook_audience.fake import make_app as facebook_app
from crossdock.plugins.facebook_audience.normalize import prepare
from crossdock.plugins.mailchimp.fake import DEFAULT_KEY, DEFAULT_LIST, MailchimpFake
from crossdock.plugins.mailchimp.fake import make_app as mailchimp_app
from crossdock.profiles import ProfileStore
from crossdock.testing.fakeserver import RunningServer, serve

PG_URL = os.environ.get("CROSSDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PEOPLE = 1000
DAYS = 6
DAY = 86400.0
T0 = 1_700_000_000.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql",
                                               marks=pytest.mark.postgres)])
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crossdock.db'}"
        return
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}")
    with temporary_schema(PG_URL, "crossdock_e2e_audience") as url:
        yield url


@pytest.fixture
def fakes() -> Iterator[tuple[FacebookAudienceFake, RunningServer, MailchimpFake,
                              RunningServer]]:
    facebook, mailchimp = FacebookAudienceFake(), MailchimpFake()
    with serve(facebook_app(facebook)) as fb_server, \
            serve(mailchimp_app(mailchimp)) as mc_server:
        yield facebook, fb_server, mailchimp, mc_server


def test_a_thousand_people_over_days_end_exactly_in_the_audience(
        tmp_path: Path, outbox_url: str,
        fakes: tuple[FacebookAudienceFake, RunningServer, MailchimpFake, RunningServer]
) -> None:
    facebook, fb_server, mailchimp, mc_server = fakes
    loaded = parse_config({
        "outbox": {"url": outbox_url},
        "destinations": {
            "fb-high-value": {"plugin": "facebook_audience", "settings": {
                "audience_id": DEFAULT_AUDIENCE, "access_token": DEFAULT_TOKEN,
                "graph_url": fb_server.url},
                # facebook_audience.md: only membership events belong in a Custom Audience.
                "filter": {"events": {"allow": ["audience_entered", "audience_exited"]}},
                "delivery": {"allow_private_network": True}},  # the fakes are on loopback
            "mailchimp-main": {"plugin": "mailchimp", "settings": {
                "api_key": DEFAULT_KEY, "list_id": DEFAULT_LIST,
                "base_url": f"{mc_server.url}/3.0"},
                # mailchimp.md: one batch at a time keeps a person's changes in order.
                "delivery": {"concurrency": 1, "allow_private_network": True}},
        },
        "audiences": {"high_value": {"condition": "lifetime_value > 500",
                                     "destinations": ["fb-high-value", "mailchimp-main"],
                                     "schedule": "0 3 * * *"}},
    }, base_dir=tmp_path, env={})
    now = [T0]
    outbox = open_outbox(outbox_url)
    store = ProfileStore(loaded.config.profiles, db=getattr(outbox, "db", None),
                         clock=lambda: now[0])
    pipeline = build_pipeline(loaded, outbox, profiles=store)
    rng = random.Random(4)

    # The test's own model of the world, independent of Crossdock's tables.
    value = {i: rng.randint(0, 700) for i in range(PEOPLE)}
    email = {i: f"Person.{i}@Example.COM" for i in range(PEOPLE)}
    erased: set[int] = set()

    def send(messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 500):
            result = pipeline.accept(messages[start:start + 500])
            assert not result.errors, result.errors[:3]

    def deliver() -> None:
        report = asyncio.run(deliver_once(loaded, outbox))
        counts = outbox.counts()
        dead = {name: c.dead for name, c in counts.items() if c.dead}
        assert not dead, (dead, outbox.dead_letters(None, 3), report)

    send([{"type": "identify", "userId": f"u{i}",
           "traits": {"email": email[i], "firstName": f"First{i}", "lastName": f"Last{i}",
                      "emailOptIn": True, "lifetime_value": value[i]}}
          for i in range(PEOPLE)])
    deliver()
    for day in range(1, DAYS + 1):
        now[0] = T0 + day * DAY
        messages = []
        for i in rng.sample(range(PEOPLE), 600):
            if i in erased:
                continue
            # Spending, refunds, and now and then a reset of the running total.
            value[i] = max(0, value[i] + rng.choice([-300, -150, 0, 120, 250, 400])) \
                if rng.random() > 0.05 else 0
            if rng.random() < 0.5:
                messages.append({"type": "identify", "userId": f"u{i}",
                                 "traits": {"lifetime_value": value[i]}})
            else:  # attributes can come with any message
                messages.append({"type": "track", "userId": f"u{i}", "event": "Order Completed",
                                 "properties": {"total": 10},
                                 "context": {"traits": {"lifetime_value": value[i]}}})
        send(messages)
        if day == 3:  # two people ask to be forgotten; the nightly sync takes them out
            for i in rng.sample(sorted(v for v in value if value[v] > 500), 2):
                with outbox.transaction() as db:
                    assert store.delete(db, f"u{i}") is not None
                erased.add(i)
        # The nightly full sync finds only what on-change syncs cannot see (erasures).
        report = sync(pipeline)
        assert report.entered == {"high_value": 0}
        assert report.exited == {"high_value": 2 if day == 3 else 0}
        if day % 2 == 0 or day == DAYS:
            deliver()

    inside = {i for i in range(PEOPLE) if value[i] > 500 and i not in erased}
    assert 100 < len(inside) < PEOPLE - 100  # the scenario moves people both ways
    assert facebook.member_values("EMAIL") == {prepare("EMAIL", email[i]) for i in inside}
    assert mailchimp.tagged("high_value") == {email[i].lower() for i in inside}
    # Mailchimp holds everyone who was ever identified, tagged or not.
    assert len(mailchimp.snapshot()["lists"][DEFAULT_LIST]) == PEOPLE
    pipeline.close()
    outbox.close()
