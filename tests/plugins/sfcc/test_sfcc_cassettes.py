"""Cassette tests: the SFCC plugin's requests (its token request first) against its contract
fake, recorded by vcrpy.

Replayed from tests/plugins/sfcc/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 pytest tests/plugins/sfcc -k cassette` (the fake is started either way).
"""

from __future__ import annotations

from pathlib import Path

from sfcc_helpers import destination, item

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.sfcc.fake import DEFAULT_CLIENT_SECRET, SfccFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=[DEFAULT_CLIENT_SECRET])


def _text(name: str) -> str:
    return (Path(VCR.cassette_library_dir or "") / name).read_text()


def test_cassette_customer_updates(server: RunningServer, fake: SfccFake) -> None:
    with VCR.use_cassette("customer_updates.yaml") as cassette:
        results = outcomes(destination(server), [
            item(1, traits={"email": "ada@example.com", "birthday": "1990-07-04",
                            "gender": "female", "tier": "gold"}),
            item(2, traits={"firstName": "Bo", "lifetime_value": 42})])
    assert results == [DELIVERED, DELIVERED]
    assert cassette.play_count == (0 if recording() else 3)  # the token, two updates
    text = _text("customer_updates.yaml")
    assert "/dwsso/oauth2/access_token" in text and "<secret>" in text
    assert DEFAULT_CLIENT_SECRET not in text


def test_cassette_refusals(server: RunningServer, fake: SfccFake) -> None:
    with VCR.use_cassette("refusals.yaml"):
        unknown = outcomes(destination(server), [item(1, userId="stranger")])
        custom = outcomes(destination(server), [item(2, traits={"tier": 7})])
    assert unknown == [Failed("HTTP 404: CustomerNotFoundException: No customer with number "
                              "'stranger' found in customer list 'RefArch'.")]
    assert custom == [Failed("HTTP 400: InvalidCustomPropertyException: Can't write custom "
                             "property 'c_loyaltyTier'. Value is either invalid or type "
                             "doesn't support modification.")]
