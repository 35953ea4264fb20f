"""A date of birth reaches every destination that reads one, through the whole pipeline.

The profile step stores it under the system attribute `birthDate` (Segment's `birthday` and
`birth_date` map onto it), so every reader must read `birthDate`: the Facebook Custom Audience's
`options.birthday` names and Mailchimp's BIRTHDAY merge field read `birthday`, which the
profile step had renamed, and no date of birth was ever sent. accept -> profile -> route ->
outbox -> deliver -> the contract fakes (crossdock.testing.pipeline)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossdock.plugins.facebook_audience.fake import (
    DEFAULT_AUDIENCE,
    DEFAULT_TOKEN,
    FacebookAudienceFake,
)
from crossdock.plugins.facebook_audience.fake import make_app as facebook_app
from crossdock.plugins.mailchimp.fake import DEFAULT_KEY, DEFAULT_LIST, MailchimpFake
from crossdock.plugins.mailchimp.fake import make_app as mailchimp_app
from crossdock.testing.fakeserver import RunningServer, serve
from crossdock.testing.pipeline import run_pipeline


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def facebook() -> Iterator[tuple[FacebookAudienceFake, RunningServer]]:
    fake = FacebookAudienceFake()
    with serve(facebook_app(fake)) as server:
        yield fake, server


@pytest.fixture
def mailchimp() -> Iterator[tuple[MailchimpFake, RunningServer]]:
    fake = MailchimpFake()
    with serve(mailchimp_app(fake)) as server:
        yield fake, server


def config(tmp_path: Path, facebook_url: str, mailchimp_url: str) -> dict[str, Any]:
    # Both fakes are on 127.0.0.1: the destinations opt into private networks.
    return {
        "outbox": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
        "collector": {"enabled": False},
        "destinations": {
            "ads": {"plugin": "facebook_audience",
                    "settings": {"audience_id": DEFAULT_AUDIENCE, "access_token": DEFAULT_TOKEN,
                                 "graph_url": facebook_url,
                                 "schema": ["EMAIL", "DOBY", "DOBM", "DOBD"]},
                    "filter": {"events": {"allow": ["audience_entered"]}},
                    "delivery": {"allow_private_network": True}},
            "news": {"plugin": "mailchimp",
                     "settings": {"api_key": DEFAULT_KEY, "list_id": DEFAULT_LIST,
                                  "base_url": mailchimp_url + "/3.0"},
                     "filter": {"message_types": ["identify"]},
                     "delivery": {"allow_private_network": True}},
        },
    }


@pytest.mark.parametrize(("trait", "value"), [
    ("birthday", "1990-07-04"),  # Segment's spec trait
    ("birth_date", "1990-07-04"),
    ("birthDate", "1990-07-04T00:00:00+0200"),  # the user API's name and form
    ("birthday", "7/4/1990"),  # M/D/YYYY
])
async def test_a_date_of_birth_reaches_facebook_and_mailchimp(
        tmp_path: Path, facebook: tuple[FacebookAudienceFake, RunningServer],
        mailchimp: tuple[MailchimpFake, RunningServer], trait: str, value: str) -> None:
    (fb, fb_server), (mc, mc_server) = facebook, mailchimp
    messages = [
        {"type": "identify", "userId": "u1", "messageId": "m-1",
         "traits": {"email": "ann@example.com", trait: value}},
        {"type": "track", "userId": "u1", "messageId": "m-2", "event": "audience_entered",
         "properties": {"audience": "born_in_july"}},
    ]
    run = await run_pipeline(config(tmp_path, fb_server.url, mc_server.url), messages,
                             base_dir=tmp_path)
    assert run.report.delivered == 2, run.rows
    assert fb.members() == [{"EMAIL": sha("ann@example.com"), "DOBY": sha("1990"),
                             "DOBM": sha("07"), "DOBD": sha("04")}]
    member = mc.member("ann@example.com")
    assert member is not None and member.merge_fields["BIRTHDAY"] == "07/04"
