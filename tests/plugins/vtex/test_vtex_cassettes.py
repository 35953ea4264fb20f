"""Cassette tests: the VTEX plugin's requests against its contract fake, recorded by vcrpy.

Replayed from tests/plugins/vtex/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 .venv/bin/python -m pytest tests/plugins/vtex -k cassette` (the fake is
started either way).
"""

from __future__ import annotations

from pathlib import Path

from vtex_helpers import APP_KEY, APP_TOKEN, destination, item

from crossdock.destination import DELIVERED, Failed
from crossdock.plugins.vtex.fake import VtexFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=(APP_KEY, APP_TOKEN))


def test_cassette_upsert_creates_updates_then_is_unchanged(server: RunningServer,
                                                           fake: VtexFake) -> None:
    with VCR.use_cassette("upsert.yaml") as cassette:
        created = outcomes(destination(server), [item(1)])
        updated = outcomes(destination(server), [item(2, traits={
            "email": "ADA1@example.com", "lastName": "King"}, consent={"email": False})])
        unchanged = outcomes(destination(server), [item(3, traits={
            "email": "ADA1@example.com", "lastName": "King"}, consent={"email": False})])
    assert created == updated == unchanged == [DELIVERED]
    assert cassette.play_count == (0 if recording() else 3)
    text = (Path(VCR.cassette_library_dir or "") / "upsert.yaml").read_text()
    assert APP_KEY not in text and APP_TOKEN not in text
    for status in ("201", "200", "304"):
        assert f"code: {status}" in text


def test_cassette_refusals(server: RunningServer, fake: VtexFake) -> None:
    with VCR.use_cassette("refusals.yaml"):
        unknown_field = outcomes(destination(server, mapping={"fields": {"plan": "plan"}}),
                                 [item(1, traits={"email": "ada@example.com", "plan": "pro"})])
        wrong_token = outcomes(destination(server, token="revoked"), [item(2)])
    assert unknown_field == [Failed("HTTP 400: Field 'plan' not found in data entity 'CL'")]
    assert wrong_token == [Failed("bad credentials (HTTP 401): Unauthorized")]
