"""Cassette tests: the Twilio plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/twilio/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from twilio_helpers import PHONE, destination, item

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.twilio.fake import AUTH_TOKEN, TwilioFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=(AUTH_TOKEN,))


def test_cassette_sms(server: RunningServer, fake: TwilioFake) -> None:
    with VCR.use_cassette("sms.yaml") as cassette:
        results = outcomes(destination(
            server, status_callback="https://hooks.example.com/twilio/status"), [item(1)])
    assert results == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 1)
    text = (Path(VCR.cassette_library_dir or "") / "sms.yaml").read_text()
    assert AUTH_TOKEN not in text and "Basic" not in text


def test_cassette_refusals(server: RunningServer, fake: TwilioFake) -> None:
    fake.opted_out.add(PHONE)
    with VCR.use_cassette("refusals.yaml"):
        unsubscribed = outcomes(destination(server), [item(1)])
        wrong_token = outcomes(destination(server, auth_token="revoked"), [item(2)])
    assert unsubscribed == [Failed("recipient: the recipient unsubscribed (replied STOP) "
                                   "(twilio 21610: Attempt to send to unsubscribed recipient)")]
    assert wrong_token == [Failed("bad credentials (twilio 20003: Authenticate)")]
