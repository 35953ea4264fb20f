"""Cassette tests: the MailUp plugin's requests (its token request first) against its contract
fake, recorded by vcrpy.

Replayed from tests/plugins/mailup/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from mailup_helpers import destination, item

from crossdock.destination import DELIVERED, Failed, Rejected
from crossdock.plugins.mailup.fake import (
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    MailUpFake,
)
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes",
                 secrets=[DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD])


def _text(name: str) -> str:
    return (Path(VCR.cassette_library_dir or "") / name).read_text()


def test_cassette_subscribe_then_withdraw(server: RunningServer, fake: MailUpFake) -> None:
    with VCR.use_cassette("subscribe_then_withdraw.yaml") as cassette:
        subscribed = outcomes(destination(server), [item(1, traits={
            "email": "ada1@example.com", "firstName": "Ada", "phone": "+393471234567"})])
        withdrawn = outcomes(destination(server), [item(1, False)])
    assert subscribed == withdrawn == [DELIVERED]
    # a token, the recipient; a token, the lookup, the unsubscription
    assert cassette.play_count == (0 if recording() else 5)
    text = _text("subscribe_then_withdraw.yaml")
    assert "grant_type=password" in text and "password=<secret>" in text
    assert DEFAULT_PASSWORD not in text and DEFAULT_CLIENT_SECRET not in text
    assert "/Console/List/1/Unsubscribe/1" in text


def test_cassette_refusals(server: RunningServer, fake: MailUpFake) -> None:
    with VCR.use_cassette("refusals.yaml"):
        no_field = outcomes(destination(server, options={"fields": {"plan": 30}}),
                            [item(1, traits={"email": "ada1@example.com", "plan": "pro"})])
        no_email = outcomes(destination(server), [item(2, traits={})])
        no_list = outcomes(destination(server, list_id=9), [item(3)])
    assert no_field == [Failed("HTTP 400: BadRequest: Field 30 does not exist in the account")]
    assert [type(o) for o in no_email] == [Rejected]
    assert no_list == [Failed("HTTP 400: BadRequest: List 9 does not exist")]
